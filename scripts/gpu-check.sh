#!/usr/bin/env bash
# One prepared check of the GPU backends for a lent GPU machine (the `device` tool), within 5 minutes.
#
#   ./scripts/gpu-check.sh --prepare   here: builds the release `mxrt` (CUDA + wgpu) and the runtime's
#                                      kernel-test binary, and copies them with the minilm-sst2 checkpoint
#                                      and SST-2 dev into target/gpu-check (about 69 MB), packed with xz into
#                                      target/gpu-check.tar.xz (about 48 MB: the device tool carries at most
#                                      64 MiB with the working tree; carry that file)
#   ./scripts/gpu-check.sh             there, in the repository root: runs everything below and prints one
#                                      short table; summary.md, the kernel-test log and results.tar.gz (every
#                                      JSON and log) under $OUT (or target/gpu-check-out). GPU_CHECK_SENTENCES=N
#                                      limits the SST-2 sentences (default: all 872)
#   ./scripts/gpu-check.sh --emulated  here, after --prepare: a rehearsal of the whole script on the CPU
#                                      emulator of the CUDA driver (tools/cuda-emu), at small sizes (24 sentences,
#                                      batch 1/2/4, seq 16), so a lent GPU's minutes are not spent on a broken
#                                      script. Its numbers are the emulator's, not a GPU's.
#
# On the GPU machine it (1) runs the CUDA kernel tests (every kernel against the scalar CPU reference; fails
# if they were skipped), (2) converts minilm-sst2 to FP32 and to MXINT8 weights + activations and compares the
# CUDA backend's logits with the CPU backend's on all 872 SST-2 dev sentences, (3) benchmarks the CUDA backend
# at batch 1/32/256, seq 128, (4) measures the MXINT8 GEMV's bandwidth against a device-to-device copy in the
# same process, and (5) where a Vulkan loader is present, runs the wgpu backend's parity and batch 1/32 bench,
# and PyTorch's FP32 BertForSequenceClassification at batch 1/32 on the same GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
pack=target/gpu-check

if [ "${1:-}" = "--prepare" ]; then
  ./scripts/fetch-models.sh >/dev/null
  cargo build --release --quiet
  test_bin=$(cargo test --release -p mxrt-runtime --features cuda --lib --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable")][-1])')
  rm -rf "$pack"
  mkdir -p "$pack/minilm-sst2"
  cp target/release/mxrt "$pack/mxrt"
  cp "$test_bin" "$pack/kernel-tests"
  strip "$pack/mxrt" "$pack/kernel-tests" 2>/dev/null || true
  cp ../shared/models/minilm-sst2/{config.json,model.safetensors,tokenizer.json,tokenizer_config.json,special_tokens_map.json,vocab.txt} "$pack/minilm-sst2/"
  cp ../shared/data/sst2/dev.tsv "$pack/sst2-dev.tsv"
  tar cf - -C target gpu-check | xz -T0 -6 > "$pack.tar.xz"
  du -sh "$pack" "$pack.tar.xz"
  echo "carry: $pack.tar.xz  then run: ./scripts/gpu-check.sh (it unpacks it)"
  exit 0
fi

batches=${GPU_CHECK_BATCHES:-1 32 256}
seq_len=${GPU_CHECK_SEQ:-128}
if [ "${1:-}" = "--emulated" ]; then
  emu=$(./scripts/build-cuda-emu.sh)
  nvrtc=$(./scripts/fetch-nvrtc.sh)
  export LD_LIBRARY_PATH="$emu:$nvrtc${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export GPU_CHECK_SENTENCES=${GPU_CHECK_SENTENCES:-24} GPU_CHECK_NO_WGPU=1 GPU_CHECK_NO_TORCH=1
  batches=${GPU_CHECK_BATCHES:-1 2 4}
  seq_len=${GPU_CHECK_SEQ:-16}
  OUT=${OUT:-target/gpu-check-emulated}
fi
# The device tool carries the packed form: unpack it where the unpacked one is missing.
if [ ! -x "$pack/mxrt" ] && [ -f "$pack.tar.xz" ]; then
  tar xJf "$pack.tar.xz" -C target
fi
results=${OUT:-target/gpu-check-out}
mkdir -p "$results"
results=$(cd "$results" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
dev="$out/sst2-dev.tsv"
head -n $(( ${GPU_CHECK_SENTENCES:-100000} + 1 )) "$pack/sst2-dev.tsv" > "$dev"
mxrt=$pack/mxrt
[ -x "$mxrt" ] || { echo "no $mxrt: run ./scripts/gpu-check.sh --prepare on the build machine first" >&2; exit 2; }
start=$(date +%s)
elapsed() { echo "$(( $(date +%s) - start )) s"; }

# NVRTC: already loadable, the toolkit's, the one PyTorch's wheels carry, or any other on the disk.
use_nvrtc_from() {
  for d in "$@"; do
    if ls "$d"/libnvrtc.so* >/dev/null 2>&1; then
      export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      echo "NVRTC from $d"
      return 0
    fi
  done
  return 1
}
if ! ldconfig -p 2>/dev/null | grep -q 'libnvrtc\.so' && [ -z "${emu:-}" ]; then
  use_nvrtc_from /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
    $(python3 -c 'import nvidia, os; print(" ".join(os.path.join(p, s, "lib") for p in nvidia.__path__ for s in ("cu13", "cuda_nvrtc")))' 2>/dev/null) ||
  use_nvrtc_from $(timeout 20 find /usr /opt /home /root -maxdepth 10 -name 'libnvrtc.so*' -not -name '*alt*' 2>/dev/null | head -3 | xargs -r -n1 dirname) ||
  echo "no NVRTC found: the CUDA steps will say so" >&2
fi
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1 || echo "unknown GPU")
echo "GPU: $gpu"

echo "== 1. CUDA kernel tests ($(elapsed))"
"$pack/kernel-tests" cuda:: --test-threads 1 --nocapture 2>&1 | tee "$out/kernel-tests.log" | grep -E "^test |test result|skipped" || true
if grep -q "skipped" "$out/kernel-tests.log" || ! grep -q "test result: ok" "$out/kernel-tests.log"; then
  echo "kernel tests failed or were skipped: see $out/kernel-tests.log" >&2
  kernel_status=FAILED
else
  kernel_status=$(grep "test result" "$out/kernel-tests.log" | sed 's/.*ok\. \([0-9]*\) passed.*/\1 passed/')
fi

echo "== 2. convert and SST-2 parity ($(elapsed))"
"$mxrt" convert "$pack/minilm-sst2" -o "$out/f32.mxrt" --weights f32 --quiet
"$mxrt" convert "$pack/minilm-sst2" -o "$out/q8.mxrt" --weights mxint8 --activations mxint8 --quiet
for m in f32 q8; do
  for b in cpu cuda; do
    "$mxrt" run "$out/$m.mxrt" --input "$dev" --json --batch-size 32 --max-length 128 --backend $b -v \
      > "$out/$m-$b.jsonl" 2> "$out/$m-$b.err" || { echo "run $m on $b failed:"; cat "$out/$m-$b.err"; }
  done
done
has_vulkan=0
if [ -z "${GPU_CHECK_NO_WGPU:-}" ] && ldconfig -p 2>/dev/null | grep -q libvulkan.so.1; then
  has_vulkan=1
  for m in f32 q8; do
    "$mxrt" run "$out/$m.mxrt" --input "$dev" --json --batch-size 32 --max-length 128 --backend wgpu -v \
      > "$out/$m-wgpu.jsonl" 2> "$out/$m-wgpu.err" || { echo "run $m on wgpu failed:"; tail -3 "$out/$m-wgpu.err"; }
  done
fi

echo "== 3. benchmarks ($(elapsed))"
small_batches=$(echo $batches | cut -d' ' -f1-2)
for m in f32 q8; do
  for batch in $batches; do
    its=20; [ $batch -ge 256 ] && its=5
    [ -n "${emu:-}" ] && its=2
    "$mxrt" bench "$out/$m.mxrt" --backend cuda --batch $batch --seq $seq_len --iterations $its --warmup 1 --json \
      > "$out/bench-$m-cuda-$batch.json" 2>> "$out/bench.err" || echo "bench $m cuda b$batch failed" >&2
  done
  for batch in $small_batches; do
    "$mxrt" bench "$out/$m.mxrt" --backend cpu --batch $batch --seq $seq_len --iterations 5 --warmup 1 --json \
      > "$out/bench-$m-cpu-$batch.json" 2>> "$out/bench.err" || echo "bench $m cpu b$batch failed" >&2
    if [ $has_vulkan = 1 ]; then
      "$mxrt" bench "$out/$m.mxrt" --backend wgpu --batch $batch --seq $seq_len --iterations 10 --warmup 2 --json \
        > "$out/bench-$m-wgpu-$batch.json" 2>> "$out/bench.err" || echo "bench $m wgpu b$batch failed" >&2
    fi
  done
done

echo "== 4. MXINT8 GEMV bandwidth ($(elapsed))"
"$mxrt" bench --kernels --backend cuda --iterations $([ -n "${emu:-}" ] && echo 10 || echo 50) --json > "$out/gemv.json" 2>> "$out/bench.err" || echo "bandwidth check failed" >&2

echo "== 5. PyTorch on the same GPU ($(elapsed))"
[ -n "${GPU_CHECK_NO_TORCH:-}" ] || PYTHONUNBUFFERED=1 timeout 120 python3 - "$pack/minilm-sst2" > "$out/torch.json" 2> "$out/torch.err" <<'PY' || echo "PyTorch bench failed (see torch.err)" >&2
import json, sys, time, torch
from transformers import AutoModelForSequenceClassification
m = AutoModelForSequenceClassification.from_pretrained(sys.argv[1], torch_dtype=torch.float32).cuda().eval()
res = {}
for batch in (1, 32, 256):
    ids = torch.randint(1000, 30000, (batch, 128), device="cuda")
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        for _ in range(3):
            m(input_ids=ids, attention_mask=mask)
        torch.cuda.synchronize()
        times = []
        for _ in range(20 if batch < 256 else 5):
            t = time.perf_counter()
            m(input_ids=ids, attention_mask=mask).logits.cpu()
            times.append(time.perf_counter() - t)
    times.sort()
    res[batch] = times[len(times) // 2] * 1e3
print(json.dumps({"torch": torch.__version__, "p50_ms": res}))
PY

echo "== summary ($(elapsed))"
[ -n "${emu:-}" ] && gpu="none: the CPU emulator of the CUDA driver (tools/cuda-emu); timings are the emulator's"
python3 - "$out" "$dev" "$gpu" "$kernel_status" "$batches" "$seq_len" <<'PY' | tee "$results/summary.md"
import json, os, sys
out, dev, gpu, kernels = sys.argv[1:5]
batches = [int(b) for b in sys.argv[5].split()]
seq_len = sys.argv[6]
mid = batches[1] if len(batches) > 1 else batches[0]
labels = [l.rstrip("\n").split("\t")[-1] for l in open(dev)][1:]
def load(name):
    p = os.path.join(out, name)
    if not os.path.exists(p) or os.path.getsize(p) == 0:
        return None
    return [json.loads(l) for l in open(p)]
def js(name):
    p = os.path.join(out, name)
    try:
        return json.load(open(p))
    except Exception:
        return None
print(f"GPU: {gpu}")
print(f"CUDA kernel tests: {kernels}")
print()
print("| model | backend | SST-2 acc | max abs logit diff vs CPU | labels equal to CPU |")
print("|---|---|---:|---:|---:|")
for m in ("f32", "q8"):
    cpu = load(f"{m}-cpu.jsonl")
    for b in ("cpu", "cuda", "wgpu"):
        r = load(f"{m}-{b}.jsonl")
        if r is None or cpu is None:
            if b != "wgpu":
                print(f"| {m} | {b} | failed | | |")
            continue
        acc = sum(str(int(x["label"] == "positive")) == y or x["label"] == y for x, y in zip(r, labels)) / len(labels)
        diff = max(abs(a - b2) for x, y in zip(r, cpu) for a, b2 in zip(x["logits"], y["logits"]))
        same = sum(x["label"] == y["label"] for x, y in zip(r, cpu))
        print(f"| {m} | {b} | {100 * acc:.2f} % | {diff:.2e} | {same}/{len(cpu)} |")
print()
print(f"Inference p50 (ms), seq {seq_len}:")
print()
print("| model | backend | " + " | ".join(f"batch {b}" for b in batches) + f" | batch {mid} seq/s |")
print("|---|---|" + "---:|" * (len(batches) + 1))
for m in ("f32", "q8"):
    for b in ("cuda", "wgpu", "cpu"):
        cells = []
        for batch in batches:
            r = js(f"bench-{m}-{b}-{batch}.json")
            cells.append(f"{r['p50_ms']:.2f}" if r else "–")
        rm = js(f"bench-{m}-{b}-{mid}.json")
        if all(c == "–" for c in cells):
            continue
        print(f"| {m} | {b} | {' | '.join(cells)} | " + (f"{mid * 1e3 / rm['p50_ms']:.0f} |" if rm else "– |"))
t = js("torch.json")
if t:
    p = t["p50_ms"]
    cells = [f"{p[str(b)]:.2f}" if str(b) in p else "–" for b in batches]
    print(f"| fp32 | PyTorch {t['torch']} | {' | '.join(cells)} | " + (f"{mid * 1e3 / p[str(mid)]:.0f} |" if str(mid) in p else "– |"))
g = js("gemv.json")
if g:
    print()
    print(f"MXINT8 GEMV {g['rows']}x{g['cols']}: {g['gemv_gb_per_s']:.0f} GB/s of stored weights; device copy "
          f"{g['copy_gb_per_s']:.0f} GB/s (read + write); GEMV at {100 * g['fraction_of_copy']:.0f} % of copy")
PY
cp "$out/kernel-tests.log" "$results/"
(cd "$out" && tar czf "$results/results.tar.gz" --exclude='*.mxrt' .)
echo "done in $(elapsed); results in $results"
