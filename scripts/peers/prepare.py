"""Builds the peer models mxrt is compared with (scripts/bench-peers.sh calls this once; results are cached).

Usage: prepare.py MINILM_DIR JSC_DIR OUT_DIR

- minilm-fp32.onnx: BertForSequenceClassification exported with the TorchScript exporter (dynamo=False,
  opset 17, eager attention: the graph ORT's transformer optimizer recognises).
- minilm-fp32-opt.onnx: ORT's transformer optimizer (model_type bert, 12 heads, hidden 384); the script checks
  the fused graph has 6 Attention, 12 SkipLayerNormalization and 6 BiasGelu nodes and stops otherwise.
- minilm-int8-opt.onnx: ORT dynamic int8 quantization of the fused graph, per channel, with
  DefaultTensorType FLOAT (shape inference cannot type the fused ops without it).
- jsc-3layer.onnx: the JSC MLP (16-64-32-32-5, ReLU, softmax) exported from an equivalent torch module.
- prepared.json: node counts and the files' sizes.
"""
import json
import os
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.optimizer import optimize_model
from safetensors.numpy import load_file
from transformers import AutoModelForSequenceClassification


def export_minilm(model_dir, path):
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, attn_implementation="eager", dtype=torch.float32).eval()
    ids = torch.ones(1, 128, dtype=torch.long)
    mask = torch.ones(1, 128, dtype=torch.long)
    types = torch.zeros(1, 128, dtype=torch.long)
    axes = {0: "batch", 1: "sequence"}
    torch.onnx.export(
        model, (ids, mask, types), path, dynamo=False, opset_version=17,
        input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["logits"],
        dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                      "logits": {0: "batch"}})


def count(path, ops):
    graph = onnx.load(path).graph
    return {op: sum(1 for n in graph.node if n.op_type == op) for op in ops}


class JscMlp(torch.nn.Module):
    def __init__(self, tensors, names):
        super().__init__()
        self.layers = torch.nn.ModuleList()
        for name in names:
            w = torch.from_numpy(tensors[f"{name}.weight"].astype(np.float32))
            b = torch.from_numpy(tensors[f"{name}.bias"].astype(np.float32))
            lin = torch.nn.Linear(w.shape[1], w.shape[0])
            lin.weight.data, lin.bias.data = w, b
            self.layers.append(lin)

    def forward(self, x):
        for i, lin in enumerate(self.layers):
            x = lin(x)
            x = torch.relu(x) if i + 1 < len(self.layers) else torch.softmax(x, dim=-1)
        return x


def export_jsc(jsc_dir, path):
    config = json.loads((Path(jsc_dir) / "config.json").read_text())
    names = [l["name"] for l in config["layers"] if l["op"] == "linear"]
    ops = [l["op"] for l in config["layers"]]
    assert ops == ["linear", "relu"] * (len(names) - 1) + ["linear", "softmax"], ops
    module = JscMlp(load_file(str(Path(jsc_dir) / "model.safetensors")), names).eval()
    torch.onnx.export(module, (torch.zeros(1, config["num_features"]),), path, dynamo=False,
                      opset_version=17, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})


def main():
    minilm, jsc, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    out.mkdir(parents=True, exist_ok=True)
    fp32, opt, int8 = out / "minilm-fp32.onnx", out / "minilm-fp32-opt.onnx", out / "minilm-int8-opt.onnx"
    export_minilm(minilm, str(fp32))
    optimized = optimize_model(str(fp32), model_type="bert", num_heads=12, hidden_size=384)
    optimized.save_model_to_file(str(opt))
    fused = count(str(opt), ["Attention", "SkipLayerNormalization", "BiasGelu", "EmbedLayerNormalization"])
    want = {"Attention": 6, "SkipLayerNormalization": 12, "BiasGelu": 6}
    if any(fused[k] != v for k, v in want.items()):
        sys.exit(f"ORT's optimizer did not fuse the graph as expected: {fused} (want {want})")
    quantize_dynamic(str(opt), str(int8), weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    export_jsc(jsc, str(out / "jsc-3layer.onnx"))
    info = {"fused_nodes": fused,
            "bytes": {p.name: p.stat().st_size for p in sorted(out.glob("*.onnx"))}}
    (out / "prepared.json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
