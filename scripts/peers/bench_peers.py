"""Runs mxrt and its peers (ONNX Runtime FP32/int8, PyTorch FP32/int8 dynamic) side by side on the same machine,
interleaved (A B C ... A B C ...), and writes the results as markdown (BENCHMARKS.md) and JSON.

Usage: bench_peers.py --mxrt BIN --work DIR --minilm DIR --jsc DIR --sst2 TSV --out BENCHMARKS.md
                      [--rounds 20] [--threads 2,1] [--quick]

DIR (--work) holds prepare.py's ONNX files and the .mxrt files this script converts. Timing rules:
- every runtime is warmed up first, then each round runs every runtime once, in the same order;
- mxrt runs in its own long-lived process (`mxrt bench --serve`): one inference per request, timed inside
  the process with the same clock as the peers' `time.perf_counter` timing of one `run` call;
- medians and p90 over the rounds; "mxrt/peer" is the ratio of medians of time (below 1: mxrt is faster).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, round((len(s) - 1) * p))]


# ---------------------------------------------------------------- runtimes: each is a callable that runs once

class Server:
    """A process speaking the `--serve` protocol (`mxrt bench --serve`, `ort-jsc`): a JSON line when ready,
    then one inference per line written, answered with its latency in ms (timed inside the process)."""

    def __init__(self, cmd, env=None):
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                                     env=env)
        self.hello = json.loads(self.proc.stdout.readline())

    def __call__(self):
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline()) / 1e3

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def MxrtServer(mxrt, model, batch, seq, threads, tier=None):
    """`tier`: the kernel tier to force (`MXRT_CPU`); None: the best this CPU runs."""
    env = None if tier is None else {**os.environ, "MXRT_CPU": tier}
    return Server([mxrt, "bench", str(model), "--batch", str(batch), "--seq", str(seq), "--threads", str(threads),
                   "--warmup", "3", "--serve"], env=env)


def ort_session(path, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def timed(fn):
    def run():
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t
    return run


def bert_feeds(ids, batch, seq):
    ids = np.asarray(ids, dtype=np.int64).reshape(batch, seq)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}


def torch_models(minilm, threads):
    import torch
    from transformers import AutoModelForSequenceClassification
    torch.set_num_threads(threads)
    fp32 = AutoModelForSequenceClassification.from_pretrained(minilm, dtype=torch.float32).eval()
    int8 = torch.ao.quantization.quantize_dynamic(
        AutoModelForSequenceClassification.from_pretrained(minilm, dtype=torch.float32).eval(),
        {torch.nn.Linear}, dtype=torch.qint8)
    return fp32, int8


def torch_runner(model, feeds):
    import torch
    tensors = {k: torch.from_numpy(v) for k, v in feeds.items()}

    def run():
        with torch.inference_mode():
            model(**tensors)
    return run


def interleave(runners, rounds, warmup=3, gap=0.0):
    """Round-robin timing. `gap` seconds of idle time after each run let the previous runtime's worker
    threads stop spinning (ORT's pool and OpenMP spin-wait after a call), so they do not steal the cores from
    the next runtime; it is not timed."""
    for run in runners.values():
        for _ in range(warmup):
            run()
    times = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            times[name].append(run())
            if gap:
                time.sleep(gap)
    return times


def summarise(case, times, unit_items=None):
    rows = []
    for name, t in times.items():
        med, p90 = statistics.median(t), percentile(t, 0.9)
        row = {"case": case, "runtime": name, "runs": len(t), "median_s": med, "p90_s": p90}
        if unit_items:
            row["items_per_s"] = unit_items / med
        rows.append(row)
    return rows


# ---------------------------------------------------------------- cases

def bert_latency(a, work, threads, batch, seq, rounds):
    import torch
    mx = {name: MxrtServer(a.mxrt, work / f"minilm-{name}.mxrt", batch, seq, threads) for name in ("fp32", "mxint8")}
    feeds = bert_feeds(mx["fp32"].hello["inputs"]["input_ids"], batch, seq)
    ort_fp32 = ort_session(work / "minilm-fp32-opt.onnx", threads)
    ort_int8 = ort_session(work / "minilm-int8-opt.onnx", threads)
    pt_fp32, pt_int8 = torch_models(a.minilm, threads)
    runners = {
        "mxrt FP32": mx["fp32"],
        "mxrt MXINT8 (w+a)": mx["mxint8"],
        "ORT FP32 (fused)": timed(lambda: ort_fp32.run(None, feeds)),
        "ORT int8 (fused, per-channel)": timed(lambda: ort_int8.run(None, feeds)),
        "PyTorch FP32": timed(torch_runner(pt_fp32, feeds)),
        "PyTorch int8 dynamic": timed(torch_runner(pt_int8, feeds)),
    }
    times = interleave(runners, rounds, gap=0.05)
    for m in mx.values():
        m.close()
    return summarise(f"minilm-sst2 batch {batch} / seq {seq}, {threads} thread(s)", times, batch)


def cpu_tiers():
    """The kernel tiers this CPU's flags announce (scripts/cpu-tiers.sh), plainest first."""
    script = Path(__file__).resolve().parent.parent / "cpu-tiers.sh"
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=True).stdout.strip()
    return [t for t in out.split(",") if t]


def per_tier(a, work, threads, batch, seq, rounds):
    """mxrt FP32 against mxrt MXINT8 (w+a) with both forced to each kernel tier this CPU runs (ONNX Runtime
    cannot be forced down a tier, so this table is mxrt against itself)."""
    rows = []
    for tier in cpu_tiers():
        mx = {name: MxrtServer(a.mxrt, work / f"minilm-{name}.mxrt", batch, seq, threads, tier)
              for name in ("fp32", "mxint8")}
        isa = mx["fp32"].hello["isa"]
        runners = {f"mxrt FP32 [{tier}: {isa}]": mx["fp32"], f"mxrt MXINT8 (w+a) [{tier}: {isa}]": mx["mxint8"]}
        times = interleave(runners, rounds, gap=0.05)
        for m in mx.values():
            m.close()
        rows += summarise(f"per kernel tier: minilm-sst2 batch {batch} / seq {seq}, {threads} thread(s), "
                          f"tier {tier}", times, batch)
    return rows


def read_sst2(path):
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    rows = [l.split("\t") for l in lines[1:] if l.strip()]
    return [r[0] for r in rows], [int(r[1]) for r in rows]


def sst2_end_to_end(a, work, threads, rounds):
    """Sentences/s over the 872 dev sentences, tokenization included, batches of 32 sorted by length."""
    import torch
    from transformers import AutoTokenizer
    texts, labels = read_sst2(a.sst2)
    tok = AutoTokenizer.from_pretrained(a.minilm)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    ort_fp32 = ort_session(work / "minilm-fp32-opt.onnx", threads)
    ort_int8 = ort_session(work / "minilm-int8-opt.onnx", threads)
    pt_fp32, pt_int8 = torch_models(a.minilm, threads)
    accuracy = {}

    def peer(name, forward):
        def run():
            preds = [0] * len(texts)
            for s in range(0, len(order), 32):
                idx = order[s:s + 32]
                enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=128,
                          return_tensors="np")
                logits = forward({k: enc[k].astype(np.int64) for k in
                                  ("input_ids", "attention_mask", "token_type_ids")})
                for i, p in zip(idx, np.argmax(logits, axis=1)):
                    preds[i] = int(p)
            accuracy[name] = float(np.mean(np.array(preds) == np.array(labels)))
        return timed(run)

    def torch_forward(model):
        def f(feeds):
            with torch.inference_mode():
                return model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits.numpy()
        return f

    def mxrt(name, model):
        def run():
            env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
            out = subprocess.run([a.mxrt, "run", str(model), "--input", a.sst2, "--max-length", "128",
                                  "--json"], capture_output=True, text=True, check=True, env=env)
            preds = [int(np.argmax(json.loads(l)["logits"])) for l in out.stdout.splitlines()]
            accuracy[name] = float(np.mean(np.array(preds) == np.array(labels)))
        return timed(run)

    runners = {
        "mxrt FP32": mxrt("mxrt FP32", work / "minilm-fp32.mxrt"),
        "mxrt MXINT8 (w+a)": mxrt("mxrt MXINT8 (w+a)", work / "minilm-mxint8.mxrt"),
        "ORT FP32 (fused)": peer("ORT FP32 (fused)", lambda f: ort_fp32.run(None, f)[0]),
        "ORT int8 (fused, per-channel)": peer("ORT int8 (fused, per-channel)", lambda f: ort_int8.run(None, f)[0]),
        "PyTorch FP32": peer("PyTorch FP32", torch_forward(pt_fp32)),
        "PyTorch int8 dynamic": peer("PyTorch int8 dynamic", torch_forward(pt_int8)),
    }
    times = interleave(runners, rounds, warmup=1, gap=0.2)
    rows = summarise(f"SST-2 dev end to end (872 sentences, tokenization included), {threads} thread(s)",
                     times, len(texts))
    for r in rows:
        r["accuracy"] = accuracy[r["runtime"]]
    return rows


def jsc(a, work, threads, batch, rounds, idle=False):
    """The JSC MLP at `batch`, every runtime interleaved. `idle`: an untimed 50 ms pause after every call, so
    each call finds the cores free and its own worker threads parked (an occasional call); otherwise calls
    follow each other at once, and a runtime's call may meet the previous runtime's spinning threads."""
    mx = MxrtServer(a.mxrt, work / "jsc-3layer-fp32.mxrt", batch, 1, threads)
    mx8 = MxrtServer(a.mxrt, work / "jsc-3layer-mxint8.mxrt", batch, 1, threads)
    sess = ort_session(work / "jsc-3layer.onnx", threads)
    x = {"x": np.random.default_rng(0).standard_normal((batch, 16), dtype=np.float32)}
    runners = {"mxrt FP32 (from Rust)": mx, "mxrt MXINT8 (from Rust)": mx8}
    servers = [mx, mx8]
    if a.ort_jsc:
        # ONNX Runtime through its C API from Rust, timed inside its process like mxrt.
        native = Server([a.ort_jsc, a.ort_lib, str(work / "jsc-3layer.onnx"), str(batch), str(threads)])
        runners["ORT FP32 (C API from Rust)"] = native
        servers.append(native)
    runners["ORT FP32 (from Python)"] = timed(lambda: sess.run(None, x))
    # Per-call latency is tiny: many rounds, so the median is stable.
    # Calls of microseconds get no gap (2000 rounds); the batch 65 536 calls (~10 ms) get one.
    idle = idle or batch >= 65536
    count = max(rounds, 2000) if batch == 1 else max(rounds, 60) if batch == 1024 else rounds
    times = interleave(runners, count, warmup=20, gap=0.05 if idle else 0.0)
    for server in servers:
        server.close()
    return summarise(jsc_name(batch, threads, idle and batch < 65536), times, batch)


def jsc_name(batch, threads, idle=False):
    after = " after 50 ms idle" if idle else ""
    return f"jsc-3layer batch {batch}{after}, {threads} thread(s)"


def cold_start(a, work, threads, rounds):
    """Process start -> model ready and -> first result (batch 1, seq 128), and peak RSS, warm page cache."""
    rows = []
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    ort_script = (
        "import sys, time, json, numpy as np, onnxruntime as ort\n"
        "so = ort.SessionOptions(); so.intra_op_num_threads = int(sys.argv[2]); so.inter_op_num_threads = 1\n"
        "s = ort.InferenceSession(sys.argv[1], so, providers=['CPUExecutionProvider']); ready = time.time()\n"
        "ids = np.full((1, 128), 2000, dtype=np.int64); ids[0, 0] = 101; ids[0, -1] = 102\n"
        "s.run(None, {'input_ids': ids, 'attention_mask': np.ones_like(ids), 'token_type_ids': np.zeros_like(ids)})\n"
        "first = time.time()\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
        "print(json.dumps({'ready_unix_s': ready, 'first_result_unix_s': first, 'peak_rss_bytes': int(hwm) * 1024}))\n")
    cases = {
        "mxrt FP32": [a.mxrt, "bench", str(work / "minilm-fp32.mxrt"), "--iterations", "1", "--warmup", "0",
                      "--threads", str(threads), "--json"],
        "mxrt MXINT8 (w+a)": [a.mxrt, "bench", str(work / "minilm-mxint8.mxrt"), "--iterations", "1",
                              "--warmup", "0", "--threads", str(threads), "--json"],
        "ORT FP32 (fused, Python)": [sys.executable, "-c", ort_script, str(work / "minilm-fp32-opt.onnx"), str(threads)],
        "ORT int8 (fused, Python)": [sys.executable, "-c", ort_script, str(work / "minilm-int8-opt.onnx"), str(threads)],
    }
    samples = {name: {"ready": [], "first": [], "rss": []} for name in cases}
    for _ in range(rounds):
        for name, cmd in cases.items():
            t0 = time.time()
            # Peak RSS comes from the child's own /proc/self/status (VmHWM is reset at exec; the rusage of a
            # child forked from this big Python process would count the parent's pages).
            out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, check=True).stdout
            r = json.loads(out)
            samples[name]["ready"].append(r["ready_unix_s"] - t0)
            samples[name]["first"].append(r["first_result_unix_s"] - t0)
            samples[name]["rss"].append(r["peak_rss_bytes"])
    for name, s in samples.items():
        rows.append({"case": f"cold start, batch 1 / seq 128, {threads} thread(s)", "runtime": name,
                     "runs": rounds, "ready_median_s": statistics.median(s["ready"]),
                     "first_result_median_s": statistics.median(s["first"]),
                     "first_result_p90_s": percentile(s["first"], 0.9),
                     "peak_rss_bytes": max(s["rss"])})
    return rows


# ---------------------------------------------------------------- report

def machine():
    info = {"platform": platform.platform(), "python": platform.python_version()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in lscpu.splitlines():
            k, _, v = line.partition(":")
            if k.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "L2 cache", "L3 cache"):
                info[k.strip()] = v.strip()
            if k.strip() == "Flags":
                flags = v.split()
                info["SIMD flags"] = " ".join(f for f in flags if f.startswith(("avx", "fma", "sse4", "amx", "vnni")))
    except OSError:
        pass
    import onnxruntime, torch
    info["onnxruntime"] = onnxruntime.__version__
    info["torch"] = torch.__version__
    return info


def markdown(info, rows, note):
    out = ["# Benchmarks: mxrt against ONNX Runtime and PyTorch", "",
           "Generated by `scripts/bench-peers.sh [--quick] [--rounds N] [--threads 2,1]` (all runtimes in one "
           "script, interleaved, on this machine; ~6 minutes, the first run also sets up the peers' venv and "
           "exports the ONNX models). The kernel section at the end comes from `scripts/bench-kernels.sh`.", ""]
    out += [f"- **{k}**: {v}" for k, v in info.items()]
    out += ["", note, ""]
    cases = []
    for r in rows:
        if r["case"] not in cases:
            cases.append(r["case"])
    for case in cases:
        rs = [r for r in rows if r["case"] == case]
        out += [f"## {case}", ""]
        if "ready_median_s" in rs[0]:
            out += ["| runtime | start → model ready (median) | start → first result (median / p90) | peak RSS |",
                    "|---|---:|---:|---:|"]
            for r in rs:
                out.append(f"| {r['runtime']} | {r['ready_median_s']*1e3:.0f} ms | {r['first_result_median_s']*1e3:.0f} / "
                           f"{r['first_result_p90_s']*1e3:.0f} ms | {r['peak_rss_bytes']/1e6:.0f} MB |")
            out.append("")
            continue
        mx = [r for r in rs if r["runtime"].startswith("mxrt")]
        peers = [r for r in rs if not r["runtime"].startswith("mxrt")]
        head = "| runtime | runs | median | p90 | per second |"
        if "accuracy" in rs[0]:
            head += " accuracy |"
        head += "".join(f" {m['runtime']} / this |" for m in mx)
        out += [head, "|" + "---|" * (head.count("|") - 1)]
        for r in rs:
            unit = "ms" if r["median_s"] < 10 else "s"
            scale = 1e3 if unit == "ms" else 1
            line = (f"| {r['runtime']} | {r['runs']} | {r['median_s']*scale:.3f} {unit} | {r['p90_s']*scale:.3f} {unit} "
                    f"| {r.get('items_per_s', 0):,.1f} |")
            if "accuracy" in r:
                line += f" {100*r['accuracy']:.2f} % |"
            for m in mx:
                line += f" {m['median_s']/r['median_s']:.2f} |"
            out.append(line)
        out.append("")
    return "\n".join(out) + "\n"


def contended(rows, case, runtime, threads):
    """A peer's run at `threads` threads slower than its run of the same case on 1 thread: a core was taken by
    another process for part of the run (seen on this shared 2-core machine), so a ratio against it says
    nothing about mxrt. The 1-thread case name is `case` with its thread count replaced."""
    median = {(r["case"], r["runtime"]): r["median_s"] for r in rows if "median_s" in r}
    one = case.replace(f"{threads} thread(s)", "1 thread(s)")
    many, single = median.get((case, runtime)), median.get((one, runtime))
    return threads > 1 and many is not None and single is not None and many > single


def targets(rows, threads):
    """Issue 18's targets, each as a ratio of medians from the rows above (> 1: mxrt faster)."""
    median = {(r["case"], r["runtime"]): r["median_s"] for r in rows if "median_s" in r}

    def ratio(case, mine, peer):
        m, p = median.get((case, mine)), median.get((case, peer))
        return None if m is None or p is None else (m, p, p / m)

    bert = lambda b: f"minilm-sst2 batch {b} / seq 128, {threads} thread(s)"
    out = []

    def add(target, found, accept, goal=None, peer=None):
        if found is None:
            return
        m, p, x = found
        fmt = (lambda t: f"{t*1e6:.1f} µs") if m < 1e-3 else (lambda t: f"{t*1e3:.2f} ms")
        met = "yes" if x >= accept else "no"
        if goal is not None:
            met += f" (goal {goal}×: {'yes' if x >= goal else 'no'})"
        if peer is not None and contended(rows, peer[0], peer[1], threads):
            met = f"unclear: {peer[1]} ran slower on {threads} threads than on 1 (a core taken during its run)"
        out.append((target, f"{fmt(m)} vs {fmt(p)}", f"{x:.2f}×", met))

    for b in (1, 32):
        add(f"MXINT8 (w+a) ≥ 1.0× ORT int8, batch {b}", ratio(bert(b), "mxrt MXINT8 (w+a)",
                                                           "ORT int8 (fused, per-channel)"), 1.0, 1.5,
            peer=(bert(b), "ORT int8 (fused, per-channel)"))
    for b in (1, 32):
        add(f"FP32 ≥ 1.0× ORT FP32, batch {b}", ratio(bert(b), "mxrt FP32", "ORT FP32 (fused)"), 1.0,
            peer=(bert(b), "ORT FP32 (fused)"))
    tier_cases = sorted({r["case"] for r in rows if r["case"].startswith("per kernel tier")})
    for case in tier_cases:
        tier = case.rsplit("tier ", 1)[1]
        batch = int(case.split("batch ")[1].split(" ")[0])
        names = [r["runtime"] for r in rows if r["case"] == case]
        fp32 = next(n for n in names if n.startswith("mxrt FP32"))
        mx8 = next(n for n in names if n.startswith("mxrt MXINT8"))
        if tier == "avx2":
            if batch != 32:
                continue
            accept = 1.3
        else:
            accept = 2.0 if batch == 32 else 1.5
        add(f"MXINT8 (w+a) ≥ {accept}× mxrt FP32, tier {tier}, batch {batch}", ratio(case, mx8, fp32), accept)
    for b, accept, idle in ((1, 10.0, False), (1024, 1.5, False), (1024, 1.5, True), (65536, 2.0, False)):
        when = " (calls back to back)" if b == 1024 and not idle else " (after 50 ms idle)" if idle else ""
        add(f"JSC MXINT8 ≥ {accept}× ORT's C API, batch {b}{when}",
            ratio(jsc_name(b, threads, idle), "mxrt MXINT8 (from Rust)", "ORT FP32 (C API from Rust)"), accept)
    lines = [f"## Targets (issue 18), {threads} thread(s)", "",
             "Generated from the tables above (medians; ratio = the other runtime's time / mxrt's: above 1, mxrt is faster).", "",
             "| target | mxrt vs other (median) | ratio | met |", "|---|---|---:|---|"]
    lines += [f"| {t} | {m} | {x} | {met} |" for t, m, x, met in out]
    return "\n".join(lines) + "\n"


def readme_block(info, rows, threads):
    """The README's figures, from this run (scripts/bench-peers.sh writes them between its markers)."""
    median = {(r["case"], r["runtime"]): r for r in rows}
    parts = []
    for b in (1, 32):
        case = f"minilm-sst2 batch {b} / seq 128, {threads} thread(s)"
        get = lambda n: median.get((case, n))
        names = ["mxrt FP32", "mxrt MXINT8 (w+a)", "ORT FP32 (fused)", "ORT int8 (fused, per-channel)"]
        if not all(get(n) for n in names):
            continue
        # A peer slower on these threads than on one had a core taken during its run: said beside its figure.
        mark = lambda n: " (slower than on 1 thread: a core was taken, see BENCHMARKS.md)" \
            if contended(rows, case, n, threads) else ""
        if b == 1:
            vals = ", ".join(f"{n} {get(n)['median_s']*1e3:.1f} ms{mark(n)}" for n in names)
        else:
            vals = ", ".join(f"{n} {get(n)['items_per_s']:.1f} seq/s{mark(n)}" for n in names)
        parts.append(f"| MiniLM-SST2 batch {b} / seq 128, {threads} threads | {vals} |")
    cold = lambda n: median.get((f"cold start, batch 1 / seq 128, {threads} thread(s)", n))
    if cold("mxrt MXINT8 (w+a)") and cold("ORT int8 (fused, Python)"):
        vals = "; ".join(f"{n} {cold(n)['first_result_median_s']*1e3:.0f} ms / {cold(n)['peak_rss_bytes']/1e6:.0f} MB"
                         for n in ("mxrt MXINT8 (w+a)", "ORT int8 (fused, Python)"))
        parts.append(f"| cold start to first result / peak RSS | {vals} |")
    jsc = lambda n: median.get((f"jsc-3layer batch 1, {threads} thread(s)", n))
    if jsc("mxrt MXINT8 (from Rust)") and jsc("ORT FP32 (C API from Rust)"):
        vals = "; ".join(f"{n} {jsc(n)['median_s']*1e6:.1f} µs"
                         for n in ("mxrt MXINT8 (from Rust)", "ORT FP32 (C API from Rust)"))
        parts.append(f"| jsc-3layer, one call at batch 1, {threads} threads | {vals} |")
    cpu = info.get("Model name", "?")
    tier = info.get("mxrt kernel tier (best here)", "?")
    return (f"Measured by `scripts/bench-peers.sh` on {cpu} (mxrt kernels: {tier}); every case, the per-tier "
            f"tables and the targets are in [`BENCHMARKS.md`](BENCHMARKS.md).\n\n| case | medians |\n|---|---|\n"
            + "\n".join(parts) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mxrt", required=True)
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--minilm", required=True)
    ap.add_argument("--jsc", required=True)
    ap.add_argument("--sst2", required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--threads", default="2,1")
    ap.add_argument("--quick", action="store_true", help="3 rounds everywhere (to check the script)")
    ap.add_argument("--ort-jsc", help="the ort-jsc harness (ONNX Runtime's C API from Rust) for the JSC cases")
    ap.add_argument("--ort-lib", help="libonnxruntime.so for --ort-jsc")
    ap.add_argument("--from-json", type=Path,
                    help="write BENCHMARKS.md and the README block again from a run's BENCHMARKS.json (no measuring)")
    ap.add_argument("--jsc-only", action="store_true",
                    help="measure only the JSC cases and print their tables (BENCHMARKS.md and README untouched)")
    a = ap.parse_args()
    if a.jsc_only:
        rows = []
        for threads in [int(t) for t in a.threads.split(",")]:
            for batch in (1, 1024, 65536):
                print(f"jsc batch {batch}, {threads} thread(s) ...", file=sys.stderr)
                rows += jsc(a, a.work, threads, batch, 3 if a.quick else a.rounds)
                if batch == 1024:
                    rows += jsc(a, a.work, threads, batch, 3 if a.quick else a.rounds, idle=True)
        print(markdown(machine(), rows, NOTE))
        return
    if a.from_json:
        saved = json.loads(a.from_json.read_text())
        write_outputs(a, saved["machine"], saved["rows"], int(a.threads.split(",")[0]))
        return
    rounds = 3 if a.quick else a.rounds
    rows = []
    for threads in [int(t) for t in a.threads.split(",")]:
        for batch in (1, 32):
            print(f"minilm batch {batch}, {threads} thread(s) ...", file=sys.stderr)
            rows += bert_latency(a, a.work, threads, batch, 128, rounds)
        for batch in (1, 1024, 65536):
            print(f"jsc batch {batch}, {threads} thread(s) ...", file=sys.stderr)
            rows += jsc(a, a.work, threads, batch, rounds if not a.quick else 3)
            if batch == 1024:
                rows += jsc(a, a.work, threads, batch, rounds if not a.quick else 3, idle=True)
    threads = int(a.threads.split(",")[0])
    for batch in (1, 32):
        print(f"minilm batch {batch} per kernel tier, {threads} thread(s) ...", file=sys.stderr)
        rows += per_tier(a, a.work, threads, batch, 128, rounds if not a.quick else 3)
    print("SST-2 end to end ...", file=sys.stderr)
    rows += sst2_end_to_end(a, a.work, threads, 1 if a.quick else 3)
    print("cold start ...", file=sys.stderr)
    rows += cold_start(a, a.work, threads, 3 if a.quick else 10)
    info = machine()
    hello = subprocess.run([a.mxrt, "bench", str(a.work / "jsc-3layer-fp32.mxrt"), "--iterations", "1", "--json"],
                           capture_output=True, text=True, check=True).stdout
    info["mxrt kernel tier (best here)"] = json.loads(hello)["isa"]
    info["kernel tiers this CPU runs"] = ", ".join(cpu_tiers())
    a.out.with_suffix(".json").write_text(json.dumps({"machine": info, "rows": rows}, indent=1))
    write_outputs(a, info, rows, threads)


NOTE = ("Medians over interleaved rounds (each round runs every runtime once, after a warm-up; an untimed 50 ms "
        "pause after each BERT and batch-65536 call lets the previous runtime's spinning worker threads go idle; JSC "
        "batch 1024 is measured both ways: calls back to back, and after 50 ms idle). The last "
        "columns divide an mxrt median by this row's median: below 1, mxrt takes less time. mxrt is timed "
        "inside its own process (`mxrt bench --serve`); the peers by `time.perf_counter` around one call from "
        "Python, except \"ORT FP32 (C API from Rust)\": ONNX Runtime's C API called from a Rust harness "
        "(`scripts/peers/ort-jsc`), timed in-process like mxrt. Cold start: warm page cache, each runtime a "
        "fresh process. \"per kernel tier\" tables: mxrt alone, FP32 and MXINT8 (w+a) both forced to the "
        "tier with `MXRT_CPU` (the peers cannot be forced down a tier). A target against a peer that ran slower "
        "on 2 threads than on 1 says \"unclear\": a core was taken from it during its run.")


def write_outputs(a, info, rows, threads):
    """BENCHMARKS.md (the tables, the targets, the kernel section kept) and the README block."""
    # The kernel section (scripts/bench-kernels.sh) lives at the end of the same file: keep it.
    previous = a.out.read_text() if a.out.exists() else ""
    kernels = previous[previous.index("\n## Kernels"):] if "\n## Kernels" in previous else ""
    if "\n## Targets" in kernels:  # an older file kept its targets after the kernels: regenerated above
        kernels = kernels[:kernels.index("\n## Targets")] + "\n"
    a.out.write_text(markdown(info, rows, NOTE) + targets(rows, threads) + kernels)
    readme = Path(__file__).resolve().parent.parent.parent / "README.md"
    begin, end = "<!-- bench-peers:begin -->", "<!-- bench-peers:end -->"
    text = readme.read_text() if readme.exists() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        readme.write_text(head + begin + "\n" + readme_block(info, rows, threads) + end + rest.split(end, 1)[1])
    print(markdown(info, rows, NOTE))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
