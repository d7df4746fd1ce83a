#!/usr/bin/env python3
"""Prints the torch-parity table of the PyTorch fixtures (tests/fixtures/torch, written by
scripts/make-torch-fixtures.py): each architecture, head and weight file converted to FP32 and run with
`mxrt run --json`, against the outputs torch computed (max |difference| over texts and over sentence pairs).
tests/torch_checkpoints.rs asserts the same comparisons (≤ 1e-4); this prints the numbers. Python's standard
library only. Usage: scripts/torch-parity-table.py [MXRT_BINARY] (default target/release/mxrt)."""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
F = REPO / "tests" / "fixtures" / "torch"
MXRT = sys.argv[1] if len(sys.argv) > 1 else str(REPO / "target" / "release" / "mxrt")
CLASSIFIERS = [  # fixture, head, weight files
    ("bert", "classifier, 2 labels", ["pytorch_model.bin", "model.safetensors"]),
    ("bert-relu", "classifier (hidden_act relu)", ["pytorch_model.bin"]),
    ("roberta", "classifier, 3 labels", ["pytorch_model.bin", "model.safetensors"]),
    ("xlm-roberta", "classifier, 2 labels (gelu_new)", ["pytorch_model.bin", "model.safetensors"]),
    ("camembert", "classifier, 3 labels (gelu_pytorch_tanh; vocab.json + merges.txt)", ["pytorch_model.bin"]),
    ("distilbert", "classifier, 2 labels", ["pytorch_model.bin", "model.safetensors"]),
    ("electra", "classifier, 2 labels (embeddings 16 -> 32)", ["pytorch_model.bin", "model.safetensors"]),
]
ENCODERS = [
    ("st-roberta", "sentence embedding (mean, Normalize)"),
    ("st-distilbert", "sentence embedding (CLS)"),
]


def mxrt(*args):
    return subprocess.run([MXRT, *map(str, args)], check=True, capture_output=True, text=True).stdout


def run(model, texts, pairs=None):
    args = ["run", model, "--json"]
    for t in texts:
        args += ["--text", t]
    for p in pairs or []:
        args += ["--text-pair", p]
    return [json.loads(line) for line in mxrt(*args).splitlines()]


def worst(got, want):
    return max(abs(a - b) for g, w in zip(got, want) for a, b in zip(g, w))


def main():
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, head, files in CLASSIFIERS:
            e = json.loads((F / name / "expected.json").read_text())
            for w in files:
                out = Path(tmp) / f"{name}-{w}.mxrt"
                mxrt("convert", F / name / "config.json", F / name / w, "-o", out, "--weights", "f32", "--quiet")
                texts = worst([l["logits"] for l in run(out, e["texts"])], e["logits"])
                a, b = zip(*e["pairs"])
                pairs = worst([l["logits"] for l in run(out, a, b)], e["pair_logits"])
                rows.append((name, head, w, texts, pairs))
        for name, head in ENCODERS:
            e = json.loads((F / name / "expected.json").read_text())
            out = Path(tmp) / f"{name}.mxrt"
            mxrt("convert", F / name, "-o", out, "--weights", "f32", "--quiet")
            w = "model.safetensors" if (F / name / "model.safetensors").exists() else "pytorch_model.bin"
            rows.append((name, head, w, worst([l["embedding"] for l in run(out, e["texts"])], e["embeddings"]), None))
        e = json.loads((F / "bert-regression" / "expected.json").read_text())
        out = Path(tmp) / "regression.mxrt"
        mxrt("convert", F / "bert-regression", "-o", out, "--weights", "f32", "--quiet")
        a, b = zip(*e["pairs"])
        scores = [[l["score"]] for l in run(out, a, b)]
        rows.append(("bert-regression", "regression, 1 label (STS-B style)", "pytorch_model.bin", None,
                     worst(scores, [[s] for s in e["scores"]])))
    fmt = lambda v: "—" if v is None else f"{v:.1e}"
    print("| fixture | head | weight file | texts max abs diff | pairs max abs diff |\n|---|---|---|---:|---:|")
    for name, head, w, t, p in rows:
        print(f"| {name} | {head} | {w} | {fmt(t)} | {fmt(p)} |")


if __name__ == "__main__":
    main()
