#!/usr/bin/env python3
"""Writes tests/fixtures/torch/: tiny, randomly initialised PyTorch checkpoints in the files torch and
Lightning write, with what PyTorch computes from them, so the Rust tests check the PyTorch reader and its
numerics without PyTorch installed. Needs torch and transformers (the peers' venv has both:
`~/.cache/mxrt-peers/bin/python scripts/make-torch-fixtures.py`). Seeded: a rerun writes the same bytes
(except legacy.pt, whose storage keys are object addresses); commit what it writes.

What it writes (all small):
  mlp/config.json      a MASE-style JSC MLP (nn.Sequential named seq_blocks.N): BN(16) ReLU Linear(16,8)
                       ReLU Linear(8,5), softmax
  mlp/best.ckpt        a Lightning training checkpoint of it: epoch, optimizer state, AttributeDict
                       hyper-parameters, weights under state_dict with the LightningModule's `model.` prefix
  mlp/state_dict.pt    the plain state dict (what goes in a pytorch_model.bin)
  mlp/expected.json    inputs and torch's FP32 outputs (softmax probabilities)
  views.pt / views.safetensors   storages shared between tensors, a slice with an offset, a transposed
                       (strided) tensor, F16/BF16/I64/bool storages, a scalar, an empty tensor; the
                       safetensors twin holds the same values, contiguous
  legacy.pt            the pre-1.6 format (refused)
  evil.pt              a state dict whose pickle calls os.system (refused, naming it)
  module.pt            a whole nn.Module saved with torch.save(model) (refused, naming its class)
  bert/                a tiny BertForSequenceClassification saved by transformers as pytorch_model.bin,
                       its WordPiece vocab.txt, and expected.json (texts and sentence pairs, input ids,
                       torch's logits)
  bert-regression/     a one-label regression head (an STS-B cross-encoder) and torch's scores for pairs
  mlp-leaky/           Linear, LeakyReLU(0.2), Dropout, Linear as a .pt state dict, and torch's outputs
  roberta/             a tiny RobertaForSequenceClassification (3 labels) with a byte-level BPE tokenizer.json
                       trained here, and torch's logits for texts and pairs
  distilbert/          a tiny DistilBertForSequenceClassification (WordPiece vocab.txt) and torch's logits for
                       texts and pairs
  electra/             a tiny ElectraForSequenceClassification with embeddings narrower than its hidden size
                       (projected), and torch's logits for texts and pairs
  bert-relu/           a tiny BERT classifier with hidden_act relu and torch's logits
  */model.safetensors  beside the pytorch_model.bin of bert, roberta, distilbert and electra: the same
                       tensors as safetensors (so each family is checked from both file formats)
  xlm-roberta/         a tiny XLMRobertaForSequenceClassification with hidden_act gelu_new, saved by
                       transformers (model.safetensors) and as pytorch_model.bin, roberta's tokenizer.json
  camembert/           a tiny CamembertForSequenceClassification with hidden_act gelu_pytorch_tanh and a
                       byte-level BPE tokenizer given as vocab.json + merges.txt only (no tokenizer.json);
                       token ids from transformers' Python RobertaTokenizer
  st-roberta/          a sentence-transformers encoder on RobertaModel (modules.json, mean pooling,
                       Normalize, max_seq_length 24) in model.safetensors, and its embeddings
  st-distilbert/       a sentence-transformers encoder on DistilBertModel (CLS pooling, no Normalize) in
                       pytorch_model.bin, and its embeddings
"""
import json
import os
import sys
import types
from collections import OrderedDict
from pathlib import Path

import torch
from safetensors.torch import save_file

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "torch"
torch.manual_seed(20261203)


TEXTS = ["the movie was very good!", "not fun, boring plot", "a great film"]
PAIRS = [("the movie was good", "a great film"), ("boring plot", "the acting was fun!")]


def write_expected(d, model, tok, token_types):
    """d/expected.json: the texts and sentence pairs, their token ids and the model's logits. Models without
    segment embeddings (RoBERTa, DistilBERT) get no token_type_ids, as their pipelines give none."""
    expected = {"texts": TEXTS, "pairs": PAIRS}
    for key, inputs in (("", TEXTS), ("pair_", PAIRS)):
        enc = tok(*zip(*inputs), padding=True, return_tensors="pt") if key else tok(inputs, padding=True, return_tensors="pt")
        args = dict(enc) if token_types else {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        with torch.no_grad():
            logits = model(**args).logits
        expected[key + "input_ids"] = [
            [i for i, m in zip(ids, mask) if m]
            for ids, mask in zip(enc["input_ids"].tolist(), enc["attention_mask"].tolist())
        ]
        expected[key + "logits"] = logits.tolist()
    (d / "expected.json").write_text(json.dumps(expected) + "\n")


def mlp_fixture():
    d = OUT / "mlp"
    d.mkdir(parents=True, exist_ok=True)
    net = torch.nn.Module()
    net.seq_blocks = torch.nn.Sequential(
        torch.nn.BatchNorm1d(16),
        torch.nn.ReLU(),
        torch.nn.Linear(16, 8),
        torch.nn.ReLU(),
        torch.nn.Linear(8, 5),
    )
    bn = net.seq_blocks[0]
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(16) * 0.5)
        bn.running_var.copy_(torch.rand(16) + 0.5)
        bn.weight.copy_(torch.rand(16) + 0.5)
        bn.bias.copy_(torch.randn(16) * 0.1)
        bn.num_batches_tracked.fill_(123)
    net.eval()
    config = {
        "model_type": "mlp",
        "task": "jet-substructure",
        "num_features": 16,
        "labels": ["g", "q", "W", "Z", "t"],
        "layers": [
            {"op": "batch_norm", "name": "seq_blocks.0", "eps": 1e-5},
            {"op": "relu"},
            {"op": "linear", "name": "seq_blocks.2"},
            {"op": "relu"},
            {"op": "linear", "name": "seq_blocks.4"},
            {"op": "softmax"},
        ],
        "source": "scripts/make-torch-fixtures.py (random weights)",
    }
    (d / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    state = net.state_dict()
    torch.save(state, d / "state_dict.pt")

    # Lightning's AttributeDict, as lightning_fabric defines it (a dict subclass), without Lightning.
    fabric = types.ModuleType("lightning_fabric.utilities.data")

    class AttributeDict(dict):
        pass

    AttributeDict.__module__ = "lightning_fabric.utilities.data"
    AttributeDict.__qualname__ = "AttributeDict"
    fabric.AttributeDict = AttributeDict
    for parent in ("lightning_fabric", "lightning_fabric.utilities"):
        sys.modules.setdefault(parent, types.ModuleType(parent))
    sys.modules["lightning_fabric.utilities.data"] = fabric
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(8, 16)
    # A training step changes the weights and the BatchNorm statistics: keep them, record the optimizer
    # state only.
    saved = {k: v.clone() for k, v in state.items()}
    net.train()
    loss = net.seq_blocks(x).sum()
    loss.backward()
    opt.step()
    with torch.no_grad():
        for k, v in net.state_dict().items():
            v.copy_(saved[k])
    net.eval()
    ckpt = {
        "epoch": 4,
        "global_step": 1234,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": OrderedDict(("model." + k, v) for k, v in net.state_dict().items()),
        "loops": {},
        "callbacks": {},
        "optimizer_states": [opt.state_dict()],
        "lr_schedulers": [],
        "hparams_name": "kwargs",
        "hyper_parameters": AttributeDict(learning_rate=1e-3, batch_size=256, model="jsc-toy"),
    }
    torch.save(ckpt, d / "best.ckpt")
    for name in ("lightning_fabric.utilities.data", "lightning_fabric.utilities", "lightning_fabric"):
        del sys.modules[name]

    inputs = torch.randn(6, 16) * 1.5
    with torch.no_grad():
        probs = torch.softmax(net.seq_blocks(inputs), dim=-1)
    (d / "expected.json").write_text(
        json.dumps({"inputs": inputs.tolist(), "probabilities": probs.tolist()}) + "\n"
    )


def views_fixture():
    base = torch.randn(6, 4)
    w = torch.randn(3, 5)
    half = torch.randn(7).half()
    bf = torch.randn(2, 3).bfloat16()
    state = OrderedDict(
        [
            ("base", base),
            ("rows_1_to_3", base[1:3]),  # shares base's storage, offset 4
            ("column_2", base[:, 2]),  # strided: stride 4
            ("transposed", w.t()),  # strided 2-D view
            ("half", half),
            ("half_tail", half[3:]),
            ("bf16", bf),
            ("ids", torch.arange(5, dtype=torch.int64)),
            ("mask", torch.tensor([True, False, True])),
            ("scalar", torch.tensor(3.5)),
            ("empty", torch.zeros(0, 4)),
        ]
    )
    torch.save(state, OUT / "views.pt")
    save_file({k: v.contiguous().clone() for k, v in state.items()}, OUT / "views.safetensors")
    torch.save({"w": base}, OUT / "legacy.pt", _use_new_zipfile_serialization=False)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo this should never run",))


def hostile_fixtures():
    torch.save({"w": torch.ones(2), "payload": Evil()}, OUT / "evil.pt")
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)), OUT / "module.pt")


def bert_fixture():
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    d = OUT / "bert"
    d.mkdir(parents=True, exist_ok=True)
    words = "the a movie film was is good great bad awful not very plot acting fun boring love hate".split()
    pieces = ["##s", "##ing", "##ed", "##ly"]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words + pieces + list("abcdefghijklmnopqrstuvwxyz.,!")
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        type_vocab_size=2,
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
        # Far above BERT's 0.02, so that the outputs differ clearly between texts (a parity check that
        # cannot pass by accident).
        initializer_range=0.3,
        architectures=["BertForSequenceClassification"],
    )
    model = BertForSequenceClassification(config).eval()
    model.config.save_pretrained(d)
    # What hub fine-tunes without safetensors ship (transformers 5 itself writes only safetensors).
    torch.save(model.state_dict(), d / "pytorch_model.bin")
    tok = BertTokenizer(str(d / "vocab.txt"), do_lower_case=True)
    # Sentence pairs: [CLS] a [SEP] b [SEP], token types 0 then 1 (what a cross-encoder reads).
    write_expected(d, model, tok, token_types=True)

    # A one-label regression head (an STS-B cross-encoder), smaller still.
    d = OUT / "bert-regression"
    d.mkdir(parents=True, exist_ok=True)
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=1,
        problem_type="regression",
        initializer_range=0.3,
        architectures=["BertForSequenceClassification"],
    )
    model = BertForSequenceClassification(config).eval()
    model.config.save_pretrained(d)
    torch.save(model.state_dict(), d / "pytorch_model.bin")
    pairs = [
        ("the movie was good", "a great film"),
        ("boring plot", "the acting was fun!"),
        ("i love this film", "i hate this movie"),
        ("a good film", "a good movie"),
        ("not very fun", "awful and boring"),
    ]
    enc = tok(*zip(*pairs), padding=True, return_tensors="pt")
    with torch.no_grad():
        scores = model(**enc).logits[:, 0]
    (d / "expected.json").write_text(json.dumps({"pairs": pairs, "scores": scores.tolist()}) + "\n")


def leaky_fixture():
    d = OUT / "mlp-leaky"
    d.mkdir(parents=True, exist_ok=True)
    net = torch.nn.Sequential(
        torch.nn.Linear(16, 8),
        torch.nn.LeakyReLU(0.2),
        torch.nn.Dropout(0.1),
        torch.nn.Linear(8, 5),
    ).eval()
    config = {
        "model_type": "mlp",
        "num_features": 16,
        "layers": [
            {"op": "linear", "name": "0"},
            {"op": "leaky_relu", "negative_slope": 0.2},
            {"op": "dropout", "p": 0.1},
            {"op": "linear", "name": "3"},
        ],
    }
    (d / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    torch.save(net.state_dict(), d / "model.pt")
    inputs = torch.randn(6, 16) * 1.5
    with torch.no_grad():
        outputs = net(inputs)
    (d / "expected.json").write_text(
        json.dumps({"inputs": inputs.tolist(), "outputs": outputs.tolist()}) + "\n"
    )


def roberta_fixture():
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing
    from transformers import RobertaConfig, RobertaForSequenceClassification, RobertaTokenizerFast

    d = OUT / "roberta"
    d.mkdir(parents=True, exist_ok=True)
    corpus = [
        "the movie was very good and the acting was great fun",
        "a boring plot, awful acting, not fun at all",
        "i love this film; i hate that movie!",
    ] * 20
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        corpus, vocab_size=300, min_frequency=1,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    )
    bpe.post_processor = RobertaProcessing(("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")))
    bpe.save(str(d / "tokenizer.json"))
    tok = RobertaTokenizerFast(tokenizer_file=str(d / "tokenizer.json"))
    config = RobertaConfig(
        vocab_size=bpe.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=66,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        num_labels=3,
        initializer_range=0.3,
        architectures=["RobertaForSequenceClassification"],
    )
    model = RobertaForSequenceClassification(config).eval()
    model.config.save_pretrained(d)
    torch.save(model.state_dict(), d / "pytorch_model.bin")
    write_expected(d, model, tok, token_types=False)


def distilbert_fixture():
    from transformers import DistilBertConfig, DistilBertForSequenceClassification, DistilBertTokenizer

    d = OUT / "distilbert"
    d.mkdir(parents=True, exist_ok=True)
    vocab = (OUT / "bert" / "vocab.txt").read_text()
    (d / "vocab.txt").write_text(vocab)
    config = DistilBertConfig(
        vocab_size=len(vocab.splitlines()),
        dim=32,
        n_layers=2,
        n_heads=4,
        hidden_dim=64,
        max_position_embeddings=64,
        num_labels=2,
        initializer_range=0.3,
        architectures=["DistilBertForSequenceClassification"],
    )
    model = DistilBertForSequenceClassification(config).eval()
    model.config.save_pretrained(d)
    torch.save(model.state_dict(), d / "pytorch_model.bin")
    tok = DistilBertTokenizer(str(d / "vocab.txt"), do_lower_case=True)
    write_expected(d, model, tok, token_types=False)


def electra_fixture():
    from transformers import BertTokenizer, ElectraConfig, ElectraForSequenceClassification

    d = OUT / "electra"
    d.mkdir(parents=True, exist_ok=True)
    vocab = (OUT / "bert" / "vocab.txt").read_text()
    (d / "vocab.txt").write_text(vocab)
    config = ElectraConfig(
        vocab_size=len(vocab.splitlines()),
        embedding_size=16,  # narrower than the hidden size: the embeddings are projected
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=2,
        initializer_range=0.3,
        architectures=["ElectraForSequenceClassification"],
    )
    model = ElectraForSequenceClassification(config).eval()
    model.config.save_pretrained(d)
    torch.save(model.state_dict(), d / "pytorch_model.bin")
    tok = BertTokenizer(str(d / "vocab.txt"), do_lower_case=True)
    write_expected(d, model, tok, token_types=True)


def bert_relu_fixture():
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    d = OUT / "bert-relu"
    d.mkdir(parents=True, exist_ok=True)
    vocab = (OUT / "bert" / "vocab.txt").read_text()
    (d / "vocab.txt").write_text(vocab)
    config = BertConfig(
        vocab_size=len(vocab.splitlines()),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        hidden_act="relu",
        num_labels=2,
        initializer_range=0.3,
        architectures=["BertForSequenceClassification"],
    )
    model = BertForSequenceClassification(config).eval()
    model.config.save_pretrained(d)
    torch.save(model.state_dict(), d / "pytorch_model.bin")
    tok = BertTokenizer(str(d / "vocab.txt"), do_lower_case=True)
    write_expected(d, model, tok, token_types=True)


def safetensors_twins():
    """model.safetensors beside each family's pytorch_model.bin: the same tensors (no randomness used, so
    the fixtures written before stay byte-identical)."""
    for name in ("bert", "roberta", "distilbert", "electra"):
        d = OUT / name
        state = torch.load(d / "pytorch_model.bin", weights_only=True)
        save_file({k: v.contiguous() for k, v in state.items()}, d / "model.safetensors", metadata={"format": "pt"})


def xlm_roberta_fixture():
    from transformers import RobertaTokenizerFast, XLMRobertaConfig, XLMRobertaForSequenceClassification

    d = OUT / "xlm-roberta"
    d.mkdir(parents=True, exist_ok=True)
    (d / "tokenizer.json").write_bytes((OUT / "roberta" / "tokenizer.json").read_bytes())
    tok = RobertaTokenizerFast(tokenizer_file=str(d / "tokenizer.json"))
    config = XLMRobertaConfig(
        vocab_size=tok.backend_tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=66,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        hidden_act="gelu_new",
        num_labels=2,
        initializer_range=0.3,
        architectures=["XLMRobertaForSequenceClassification"],
    )
    model = XLMRobertaForSequenceClassification(config).eval()
    model.save_pretrained(d)  # config.json and model.safetensors, as transformers writes them
    torch.save(model.state_dict(), d / "pytorch_model.bin")
    write_expected(d, model, tok, token_types=False)


def camembert_fixture():
    from tokenizers import Tokenizer
    from transformers import CamembertConfig, CamembertForSequenceClassification, RobertaTokenizer

    d = OUT / "camembert"
    d.mkdir(parents=True, exist_ok=True)
    # The roberta fixture's byte-level BPE as the two files RoBERTa-style checkpoints ship.
    Tokenizer.from_file(str(OUT / "roberta" / "tokenizer.json")).model.save(str(d))
    tok = RobertaTokenizer(str(d / "vocab.json"), str(d / "merges.txt"))
    config = CamembertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=66,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        hidden_act="gelu_pytorch_tanh",
        num_labels=3,
        initializer_range=0.3,
        architectures=["CamembertForSequenceClassification"],
    )
    model = CamembertForSequenceClassification(config).eval()
    model.config.save_pretrained(d)
    torch.save(model.state_dict(), d / "pytorch_model.bin")
    write_expected(d, model, tok, token_types=False)


def write_embeddings(d, model, tok, pooling, normalize, max_length):
    """d/expected.json: texts, their token ids and sentence-transformers' embedding (pooling over the
    tokens of the last hidden state, then L2 normalisation when the pipeline has Normalize)."""
    texts = TEXTS + ["a much longer text about a movie whose plot was boring and whose acting was awful " * 3]
    enc = tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    if pooling == "mean":
        emb = (hidden * mask).sum(1) / mask.sum(1)
    else:
        emb = hidden[:, 0]
    if normalize:
        emb = torch.nn.functional.normalize(emb, dim=1)
    ids = [[i for i, m in zip(r, k) if m] for r, k in zip(enc["input_ids"].tolist(), enc["attention_mask"].tolist())]
    (d / "expected.json").write_text(json.dumps({"texts": texts, "input_ids": ids, "embeddings": emb.tolist()}) + "\n")


def sentence_transformers_files(d, pooling, normalize, max_length):
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (d / "modules.json").write_text(json.dumps(modules, indent=2) + "\n")
    (d / "1_Pooling").mkdir(exist_ok=True)
    (d / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": 32,
        "pooling_mode_cls_token": pooling == "cls",
        "pooling_mode_mean_tokens": pooling == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }, indent=2) + "\n")
    (d / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_length, "do_lower_case": False}) + "\n")


def st_roberta_fixture():
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    d = OUT / "st-roberta"
    d.mkdir(parents=True, exist_ok=True)
    (d / "tokenizer.json").write_bytes((OUT / "roberta" / "tokenizer.json").read_bytes())
    tok = RobertaTokenizerFast(tokenizer_file=str(d / "tokenizer.json"))
    config = RobertaConfig(
        vocab_size=tok.backend_tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=66,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        initializer_range=0.3,
        architectures=["RobertaModel"],
    )
    model = RobertaModel(config).eval()
    model.save_pretrained(d)
    sentence_transformers_files(d, "mean", True, 24)
    write_embeddings(d, model, tok, "mean", True, 24)


def st_distilbert_fixture():
    from transformers import DistilBertConfig, DistilBertModel, DistilBertTokenizer

    d = OUT / "st-distilbert"
    d.mkdir(parents=True, exist_ok=True)
    (d / "vocab.txt").write_text((OUT / "bert" / "vocab.txt").read_text())
    config = DistilBertConfig(
        vocab_size=len((d / "vocab.txt").read_text().splitlines()),
        dim=32,
        n_layers=2,
        n_heads=4,
        hidden_dim=64,
        max_position_embeddings=64,
        initializer_range=0.3,
        architectures=["DistilBertModel"],
    )
    model = DistilBertModel(config).eval()
    model.config.save_pretrained(d)
    torch.save(model.state_dict(), d / "pytorch_model.bin")
    tok = DistilBertTokenizer(str(d / "vocab.txt"), do_lower_case=True)
    sentence_transformers_files(d, "cls", False, 64)
    write_embeddings(d, model, tok, "cls", False, 64)


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    mlp_fixture()
    views_fixture()
    hostile_fixtures()
    bert_fixture()
    leaky_fixture()
    roberta_fixture()
    distilbert_fixture()
    electra_fixture()
    bert_relu_fixture()
    safetensors_twins()
    xlm_roberta_fixture()
    camembert_fixture()
    st_roberta_fixture()
    st_distilbert_fixture()
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            print(f"{p.relative_to(OUT)}: {p.stat().st_size} bytes")
