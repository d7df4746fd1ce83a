"""The mxrt Python package against the mxrt command on the same files (MXRT_BIN names the binary; scripts/test-python.sh
sets it): answers equal `mxrt run --json` within 1e-6, one model shared by threads, the GIL released during
inference, errors as exceptions with the message, numpy in and out for MLPs, convert / inspect / verify."""
import json
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import mxrt

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "runtime" / "tests" / "fixtures"
CLASSIFIER, ENCODER, MLP = (FIXTURES / n for n in ("tiny-classifier.mxrt", "tiny-encoder.mxrt", "tiny-mlp.mxrt"))
TEXTS = ["the movie was very good!", "boring plot", "a great film", "not fun, awful acting"]


def mxrt_bin() -> str:
    path = os.environ.get("MXRT_BIN")
    if not path:
        raise RuntimeError("set MXRT_BIN to the mxrt binary (scripts/test-python.sh does)")
    return path


def run_json(*args) -> list:
    out = subprocess.run([mxrt_bin(), "run", *map(str, args), "--json"], check=True, capture_output=True, text=True)
    return [json.loads(line) for line in out.stdout.splitlines()]


def cli_texts(model, texts, pairs=None):
    args = [model]
    for t in texts:
        args += ["--text", t]
    for p in pairs or []:
        args += ["--text-pair", p]
    return run_json(*args)


def test_classify_equals_mxrt_run():
    m = mxrt.Model(CLASSIFIER)
    labels, probabilities = m.classify(TEXTS)
    assert probabilities.dtype == np.float32 and probabilities.shape == (len(TEXTS), 2)
    want = cli_texts(CLASSIFIER, TEXTS)
    assert labels == [w["label"] for w in want]
    np.testing.assert_allclose(probabilities, [w["probabilities"] for w in want], atol=1e-6, rtol=0)
    np.testing.assert_allclose(m.logits(TEXTS), [w["logits"] for w in want], atol=1e-6, rtol=0)
    assert m.labels == ["negative", "positive"]
    assert m.info["task"] == "classification" and m.info["labels"] == m.labels

    pairs = [("the movie was good", "a great film"), ("boring plot", "the acting was fun!")]
    labels, probabilities = m.classify_pairs(pairs)
    want = cli_texts(CLASSIFIER, [a for a, _ in pairs], [b for _, b in pairs])
    assert labels == [w["label"] for w in want]
    np.testing.assert_allclose(probabilities, [w["probabilities"] for w in want], atol=1e-6, rtol=0)


def test_embed_equals_mxrt_run():
    m = mxrt.Model(ENCODER, threads=2, max_batch=2)
    vectors = m.embed(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), m.info["output_width"])
    want = cli_texts(ENCODER, TEXTS)
    np.testing.assert_allclose(vectors, [w["embedding"] for w in want], atol=1e-6, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_mlp_numpy_round_trip_equals_mxrt_run(tmp_path):
    m = mxrt.Model(MLP)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(37, m.info["input_features"]))  # float64: converted to float32
    y = m.run(x)
    assert y.dtype == np.float32 and y.shape == (37, m.info["output_width"])
    csv = tmp_path / "x.csv"
    np.savetxt(csv, x.astype(np.float32), delimiter=",", fmt="%.9e")
    want = run_json(MLP, "--input", csv)
    np.testing.assert_allclose(y, [w["outputs"] for w in want], atol=1e-6, rtol=0)
    np.testing.assert_array_equal(m.run(x.astype(np.float32).tolist()), y)  # nested lists work too


def test_one_model_answers_many_threads():
    m = mxrt.Model(CLASSIFIER)
    _, want = m.classify(TEXTS)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: m.classify(TEXTS)[1], range(32)))
    for got in results:
        np.testing.assert_array_equal(got, want)


def test_the_gil_is_released_while_a_model_computes():
    m = mxrt.Model(MLP)
    x = np.random.default_rng(1).normal(size=(400_000, 16)).astype(np.float32)
    ticks, running = [0], [True]

    def count():
        while running[0]:
            ticks[0] += 1

    t = threading.Thread(target=count)
    t.start()
    time.sleep(0.05)
    before = ticks[0]
    start = time.perf_counter()
    m.run(x)
    seconds = time.perf_counter() - start
    during = ticks[0] - before
    running[0] = False
    t.join()
    # With the GIL held for the whole call, the counting thread could not run at all meanwhile.
    assert seconds > 0.005, seconds
    assert during > 1000, (during, seconds)


def test_errors_are_exceptions_with_the_message(tmp_path):
    with pytest.raises(mxrt.MxrtError, match="missing.mxrt"):
        mxrt.Model(tmp_path / "missing.mxrt")
    with pytest.raises(ValueError, match="unknown backend"):
        mxrt.Model(MLP, backend="tpu")
    m = mxrt.Model(MLP)
    bad = np.zeros((3, 16))
    bad[2, 5] = np.nan
    with pytest.raises(mxrt.InputError, match="row 2, column 5"):
        m.run(bad)
    with pytest.raises(mxrt.InputError, match="16 features"):
        m.run(np.zeros((2, 3)))
    with pytest.raises(mxrt.InputError, match="MLP"):
        m.classify(["a"])
    with pytest.raises(mxrt.InputError, match="classifier"):
        mxrt.Model(CLASSIFIER).embed(["a"])
    with pytest.raises(TypeError):
        mxrt.Model(CLASSIFIER).classify("one string, not a list")
    truncated = tmp_path / "truncated.mxrt"
    truncated.write_bytes(MLP.read_bytes()[:100])
    with pytest.raises(mxrt.MxrtError):
        mxrt.Model(truncated)
    report = mxrt.verify(truncated)
    assert report["ok"] is False and "truncated.mxrt" in report["error"]


def test_convert_inspect_and_verify(tmp_path):
    out = tmp_path / "bert.mxrt"
    report = mxrt.convert(REPO / "tests" / "fixtures" / "torch" / "bert", out, weights="mxint8",
                          activations="mxint8")
    assert out.is_file()
    assert report["tensors"] and all("encoding" in t for t in report["tensors"])
    assert any(t["encoding"] == "mxint8" for t in report["tensors"])
    info = mxrt.inspect(out)
    assert info["totals"]["file_bytes"] == out.stat().st_size
    assert info["metadata"]["architecture"] == "bert"
    checked = mxrt.verify(out)
    assert checked["ok"] is True and "tokenizer built" in checked["model"]
    labels, probabilities = mxrt.Model(out).classify(TEXTS)
    assert len(labels) == len(TEXTS) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    with pytest.raises(mxrt.ConvertError, match="config.json"):
        mxrt.convert(tmp_path, tmp_path / "nothing.mxrt")
    assert not (tmp_path / "nothing.mxrt").exists()
