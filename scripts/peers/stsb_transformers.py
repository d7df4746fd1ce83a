"""STS-B test Spearman of a sentence encoder computed with transformers (the independent reference for
`mxrt eval --task stsb`), optionally compared with mxrt's embeddings of the same sentences.

Usage: stsb_transformers.py MODEL_DIR STS_TEST_TSV [MXRT_RUN_JSONL SENTENCES_TSV]

Protocol (as ../shared/README.md states it): mean pooling of the last hidden state over the attention mask, max
length 128, cosine similarity, Spearman against the gold scores (column 5; sentences in columns 6 and 7).
MXRT_RUN_JSONL is `mxrt run MODEL.mxrt --input SENTENCES_TSV --json` output (one `embedding` per line, in the
order of SENTENCES_TSV, which has a `sentence` header).
"""
import json
import sys

import numpy as np
import torch
from scipy.stats import spearmanr
from transformers import AutoModel, AutoTokenizer


def main():
    model_dir, data = sys.argv[1], sys.argv[2]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    rows = [line.rstrip("\n").split("\t") for line in open(data, encoding="utf-8")]

    def embed(texts, batch=64):
        out = []
        for i in range(0, len(texts), batch):
            enc = tokenizer(texts[i:i + batch], padding=True, truncation=True, max_length=128,
                            return_tensors="pt")
            with torch.no_grad():
                hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            out.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
        return np.concatenate(out)

    a, b = embed([r[5] for r in rows]), embed([r[6] for r in rows])
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    gold = [float(r[4]) for r in rows]
    print(f"transformers {__import__('transformers').__version__} torch {torch.__version__}: "
          f"{len(rows)} pairs, Spearman {spearmanr(gold, cosine).correlation:.5f}")
    if len(sys.argv) > 4:
        sentences = [line.rstrip("\n") for line in open(sys.argv[4], encoding="utf-8")][1:]
        mxrt = {s: np.array(json.loads(line)["embedding"])
                for s, line in zip(sentences, open(sys.argv[3], encoding="utf-8"))}
        ours = np.stack([mxrt[r[5]] for r in rows])
        unit = a / np.linalg.norm(a, axis=1, keepdims=True)
        print(f"max |mxrt - transformers| over {len(rows)} L2-normalised embeddings: "
              f"{np.abs(ours - unit).max():.3g}")


if __name__ == "__main__":
    main()
