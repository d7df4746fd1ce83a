#!/usr/bin/env python3
"""A bounded load run against `mxrt serve` (loopback only; stops by itself): N requests of 1-8 sentences from C
concurrent clients (each on one keep-alive connection), with dynamic batching and without, plus the latency of
single one-sentence requests sent one at a time. Prints a markdown section and, with --out, puts it in
BENCHMARKS.md as the "## Server" section (replacing the previous one).

Usage: bench_serve.py --mxrt BIN --model M.mxrt --sentences dev.tsv [--requests 2000] [--clients 16]
                      [--single 200] [--out BENCHMARKS.md]
"""
import argparse
import http.client
import json
import platform
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks_md import replace_section


def start(mxrt, model, extra):
    p = subprocess.Popen([mxrt, "serve", str(model), "--port", "0", *extra], stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if m:
            threading.Thread(target=p.stderr.read, daemon=True).start()
            return p, int(m.group(1))
    raise SystemExit("mxrt serve exited before listening")


def stop(p):
    p.terminate()
    if p.wait(timeout=60) != 0:
        raise SystemExit(f"mxrt serve exited with {p.returncode}")


def post(conn, texts):
    body = json.dumps({"texts": texts})
    t0 = time.perf_counter()
    conn.request("POST", "/classify", body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    dt = time.perf_counter() - t0
    if r.status != 200:
        raise RuntimeError(f"status {r.status}: {data[:200]!r}")
    if len(json.loads(data)["results"]) != len(texts):
        raise RuntimeError("wrong number of results")
    return dt


def load(port, requests, clients, sentences, seed):
    rng = random.Random(seed)
    work = [rng.sample(sentences, rng.randint(1, 8)) for _ in range(requests)]
    lock = threading.Lock()
    latencies, errors, next_item = [], [], [0]

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                i = next_item[0]
                if i >= len(work):
                    return
                next_item[0] += 1
            try:
                dt = post(conn, work[i])
                with lock:
                    latencies.append(dt)
            except Exception as e:  # counted and reported, never hidden
                with lock:
                    errors.append(str(e))
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    n_sent = sum(len(w) for w in work)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    return {"requests": requests, "errors": len(errors), "first_error": errors[0] if errors else None,
            "sentences": n_sent, "wall_s": wall, "sent_per_s": n_sent / wall, "req_per_s": requests / wall,
            "p50_ms": q[49] * 1e3, "p99_ms": q[98] * 1e3}


def single(port, n, sentences):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for s in sentences[:10]:  # warm-up
        post(conn, [s])
    lat = [post(conn, [sentences[i % len(sentences)]]) for i in range(n)]
    return {"requests": n, "p50_ms": statistics.median(lat) * 1e3,
            "p99_ms": statistics.quantiles(lat, n=100)[98] * 1e3}


def batches(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    get = lambda name: float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))
    n = get("mxrt_batches_total")
    return n, get("mxrt_batch_inputs_sum") / max(n, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mxrt", required=True)
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--sentences", required=True, type=Path)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--single", type=int, default=200)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    lines = a.sentences.read_text().splitlines()[1:]
    sentences = [l.split("\t")[0] for l in lines if l.strip()]

    rows = {}
    p, port = start(a.mxrt, a.model, [])
    try:
        rows["single"] = single(port, a.single, sentences)
        rows["batching"] = load(port, a.requests, a.clients, sentences, 1)
        rows["batching"]["batches"], rows["batching"]["per_batch"] = batches(port)
    finally:
        stop(p)
    p, port = start(a.mxrt, a.model, ["--no-batching"])
    try:
        rows["none"] = load(port, a.requests, a.clients, sentences, 1)
        rows["none"]["batches"], rows["none"]["per_batch"] = batches(port)
    finally:
        stop(p)

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    isa = json.loads(subprocess.run([a.mxrt, "bench", str(a.model), "--iterations", "1", "--json"],
                                    capture_output=True, text=True, check=True).stdout)["isa"]
    b, n, s = rows["batching"], rows["none"], rows["single"]
    md = (
        "## Server (`./scripts/bench-serve.sh`: `mxrt serve`, loopback)\n\n"
        f"minilm-sst2 MXINT8 (w+a) on the CPU ({cpu}, tier {isa}, {platform.machine()}, default threads), "
        f"`POST /classify` with 1–8 SST-2 dev sentences per request ({a.requests} requests from {a.clients} "
        "concurrent keep-alive clients, Python http.client; the client shares the machine's cores with the server). "
        "Latency is per request, client side.\n\n"
        "| run | requests | errors | sentences/s | requests/s | p50 latency | p99 latency | forward passes | sentences per pass |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        f"| dynamic batching (5 ms window, max 32) | {b['requests']} | {b['errors']} | {b['sent_per_s']:.0f} | "
        f"{b['req_per_s']:.0f} | {b['p50_ms']:.1f} ms | {b['p99_ms']:.1f} ms | {b['batches']:.0f} | {b['per_batch']:.1f} |\n"
        f"| `--no-batching` (one request per pass) | {n['requests']} | {n['errors']} | {n['sent_per_s']:.0f} | "
        f"{n['req_per_s']:.0f} | {n['p50_ms']:.1f} ms | {n['p99_ms']:.1f} ms | {n['batches']:.0f} | {n['per_batch']:.1f} |\n"
        f"| single 1-sentence requests, one at a time | {s['requests']} | 0 | — | — | {s['p50_ms']:.1f} ms | "
        f"{s['p99_ms']:.1f} ms | — | 1 |\n\n"
        f"Throughput gain of dynamic batching: **{b['sent_per_s'] / n['sent_per_s']:.2f}×** sentences/s.\n"
    )
    print(md)
    if b["errors"] or n["errors"]:
        print(f"errors: {b['first_error'] or n['first_error']}", file=sys.stderr)
        sys.exit(1)
    if a.out:
        replace_section(a.out, "Server", md)


if __name__ == "__main__":
    main()
