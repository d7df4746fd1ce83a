#!/usr/bin/env python3
"""Fixed point, calibrated: accuracy and speed of `mxrt convert --calibrate`, written into BENCHMARKS.md as the
"## Fixed point, calibrated" section (replacing the previous one).

minilm-sst2: 8-bit fixed weights and activations, calibrated on the first 256 SST-2 dev sentences with each
method, evaluated on the other 616 (held out) and, for the KL used to choose the default, on the calibration
split itself; the hand-set fraction widths (weights fixed:8.7, activations fixed:8.4) beside. Speed: `mxrt bench`
batch 1 and 32 at seq 128, the calibrated model and MXINT8 (w+a) interleaved, medians of rounds, on every kernel
tier this CPU runs (MXRT_CPU); the per-channel model (`--calib-channels`) beside. all-MiniLM-L6-v2 (when
fetched): embedding cosine to FP32 on examples/sentences.txt, calibrated on examples/calibration.txt.

Usage: bench_calibration.py --mxrt BIN --shared ../shared [--rounds 3] [--out BENCHMARKS.md]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
from pathlib import Path

from benchmarks_md import replace_section

METHODS = ["percentile:99.99", "mse", "minmax", "percentile:99.9"]


def run(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return out.stdout


def evaluate(mxrt, model, data, reference):
    r = json.loads(run([mxrt, "eval", model, "--data", data, "--reference", reference, "--json"]))
    return r


def bench(mxrt, model, batch, tier):
    env = dict(os.environ, MXRT_CPU=tier)
    r = json.loads(run([mxrt, "bench", model, "--batch", str(batch), "--seq", "128", "--iterations",
                        "10" if batch == 1 else "3", "--json"], env=env))
    return r["p50_ms"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mxrt", required=True)
    p.add_argument("--shared", required=True, type=Path)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    mxrt = a.mxrt
    ckpt = str(a.shared / "models/minilm-sst2")
    dev = (a.shared / "data/sst2/dev.tsv").read_text().splitlines()
    work = Path(tempfile.mkdtemp())
    calib, held = work / "calib.tsv", work / "held-out.tsv"
    calib.write_text("\n".join([dev[0]] + dev[1:257]) + "\n")
    held.write_text("\n".join([dev[0]] + dev[257:]) + "\n")

    rows = []
    hand = work / "hand.mxrt"
    run([mxrt, "convert", ckpt, "-o", str(hand), "--weights", "fixed:8.7", "--activations", "fixed:8.4",
         "--quiet"])
    variants = [("hand-set (weights fixed:8.7, activations fixed:8.4)", hand)]
    for m in METHODS:
        f = work / f"cal-{m.replace(':', '-')}.mxrt"
        run([mxrt, "convert", ckpt, "-o", str(f), "--weights", "fixed:8.7", "--activations", "fixed:8.4",
             "--calibrate", str(calib), "--calib-method", m, "--quiet"])
        variants.append((f"calibrated, `--calib-method {m}`", f))
    refined = work / "cal-refined.mxrt"
    run([mxrt, "convert", ckpt, "-o", str(refined), "--weights", "fixed:8.7", "--activations", "fixed:8.4",
         "--calibrate", str(calib), "--calib-refine", "--quiet"])
    variants.append(("calibrated (default method), then `--calib-refine`", refined))
    channels = work / "cal-channels.mxrt"
    run([mxrt, "convert", ckpt, "-o", str(channels), "--weights", "fixed:8.7", "--activations", "fixed:8.4",
         "--calibrate", str(calib), "--calib-channels", "--quiet"])
    variants.append(("calibrated per channel (`--calib-channels`)", channels))
    channels_refined = work / "cal-channels-refined.mxrt"
    run([mxrt, "convert", ckpt, "-o", str(channels_refined), "--weights", "fixed:8.7", "--activations",
         "fixed:8.4", "--calibrate", str(calib), "--calib-channels", "--calib-refine", "--quiet"])
    variants.append(("calibrated per channel, then `--calib-refine`", channels_refined))
    for name, f in variants:
        h = evaluate(mxrt, str(f), str(held), ckpt)
        c = evaluate(mxrt, str(f), str(calib), ckpt)
        rows.append((name, h, c))

    mx = work / "mxint8.mxrt"
    run([mxrt, "convert", ckpt, "-o", str(mx), "--weights", "mxint8", "--activations", "mxint8", "--quiet"])
    default = work / "cal-percentile-99.99.mxrt"
    probe = subprocess.run([mxrt, "bench", str(mx), "--batch", "1", "--seq", "8", "--iterations", "1", "--json"],
                           capture_output=True, text=True, check=True)
    best = json.loads(probe.stdout)["isa"]
    tiers = [t for t in ["avx2", "avx2vnni", "avx512", "amx"]
             if subprocess.run([mxrt, "bench", str(mx), "--batch", "1", "--seq", "8", "--iterations", "1"],
                               capture_output=True, env=dict(os.environ, MXRT_CPU=t)).returncode == 0]
    speed = []
    for tier in tiers:
        for batch in (1, 32):
            times = {"fixed": [], "channels": [], "mx": []}
            for _ in range(a.rounds):
                times["fixed"].append(bench(mxrt, str(default), batch, tier))
                times["channels"].append(bench(mxrt, str(channels), batch, tier))
                times["mx"].append(bench(mxrt, str(mx), batch, tier))
            f, c, m = (statistics.median(times[k]) for k in ("fixed", "channels", "mx"))
            speed.append((tier, batch, f, c, m))

    base = Path(__file__).resolve().parents[2] / "target/models/all-MiniLM-L6-v2"
    embed = []
    if base.exists():
        fp32 = work / "mini-fp32.mxrt"
        run([mxrt, "convert", str(base), "-o", str(fp32), "--weights", "f32", "--quiet"])
        sentences = str(Path(__file__).resolve().parents[2] / "examples/sentences.txt")
        cal_text = str(Path(__file__).resolve().parents[2] / "examples/calibration.txt")
        for name, extra in [("hand-set fixed:8.5 (the quickstart before calibration)", []),
                            ("calibrated on examples/calibration.txt (default method)",
                             ["--calibrate", cal_text]),
                            ("calibrated on examples/calibration.txt, then `--calib-refine`",
                             ["--calibrate", cal_text, "--calib-refine"]),
                            ("calibrated per channel (`--calib-channels`)",
                             ["--calibrate", cal_text, "--calib-channels"]),
                            ("calibrated per channel, then `--calib-refine` (the quickstart)",
                             ["--calibrate", cal_text, "--calib-channels", "--calib-refine"]),
                            ("MXINT8 w+a (recipes/mxint8.toml)", None)]:
            f = work / "mini.mxrt"
            if extra is None:
                run([mxrt, "convert", str(base), "-o", str(f), "--recipe", "recipes/mxint8.toml", "--quiet"])
            else:
                run([mxrt, "convert", str(base), "-o", str(f), "--weights", "fixed:8.5", "--activations",
                     "fixed:8.5", "--rounding", "even", "--quiet"] + extra)
            r = json.loads(run([mxrt, "eval", str(f), "--data", sentences, "--reference", str(fp32), "--json"]))
            embed.append((name, r["mean_embedding_cosine_to_reference"], r["min_embedding_cosine_to_reference"],
                          r["nearest_neighbour_agreement"]))

    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    fp32_held = rows[0][1]["reference_accuracy"]
    md = ["## Fixed point, calibrated (`./scripts/bench-calibration.sh`)\n",
          f"minilm-sst2, 8-bit fixed-point weights and activations; {cpu} ({platform.machine()}, best tier {best}, "
          f"2 threads). Calibration split: SST-2 dev sentences 1–256; held-out split: 257–872 (616). The default "
          "method was chosen on the calibration split's KL divergence to FP32, not on the held-out numbers.\n",
          f"| model | held-out accuracy (FP32 {100 * fp32_held:.2f} %) | held-out agreement | calibration-split KL | "
          "calibration-split agreement |",
          "|---|---:|---:|---:|---:|"]
    for name, h, c in rows:
        md.append(f"| {name} | {100 * h['accuracy']:.2f} % ({100 * (h['accuracy'] - fp32_held):+.2f} pt) | "
                  f"{100 * h['agreement']:.2f} % | {c['kl']:.4f} | {100 * c['agreement']:.2f} % |")
    md.append("\nSpeed, `mxrt bench --seq 128` p50 (medians of "
              f"{a.rounds} interleaved rounds), calibrated fixed 8 (default method; and per channel) against "
              "MXINT8 w+a, each forced to the tier with `MXRT_CPU`:\n")
    md.append("| tier | batch | fixed 8 calibrated | fixed 8 per channel | MXINT8 w+a | fixed / MXINT8 | "
              "per channel / MXINT8 |")
    md.append("|---|---:|---:|---:|---:|---:|---:|")
    for tier, batch, f, c, m in speed:
        md.append(f"| {tier} | {batch} | {f:.1f} ms | {c:.1f} ms | {m:.1f} ms | {f / m:.2f}× | {c / m:.2f}× |")
    if embed:
        md.append("\nall-MiniLM-L6-v2, 8-bit fixed weights and activations, embeddings of examples/sentences.txt "
                  "(40) against FP32:\n")
        md.append("| model | mean cosine | min cosine | nearest-neighbour agreement |")
        md.append("|---|---:|---:|---:|")
        for name, mean, low, nn in embed:
            md.append(f"| {name} | {mean:.4f} | {low:.4f} | {100 * nn:.0f} % |")
    text_md = "\n".join(md) + "\n"
    print(text_md)
    if a.out:
        replace_section(a.out, "Fixed point, calibrated", text_md)


if __name__ == "__main__":
    main()
