#!/bin/bash
# Assemble .gpu/ (git-ignored) for training the bundled model on a lent GPU machine that has PyTorch but
# no network, no espeak-ng and none of the train extra: the machine gets the repo plus this kit
# (carried, under 64 MiB) and runs `bash .gpu/run.sh`. See README.md here.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo "/.gpu/" >> .git/info/exclude; }
mkdir -p .gpu/whl && cp scripts/device/run.sh scripts/device/render.py .gpu/
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .gpu/whl datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 jiwer==4.0.0 \
  rapidfuzz==3.14.6 soundfile==0.14.0 soxr==1.1.0 transformers==5.24.0 cffi==2.0.0 pycparser
# espeak-ng from the distribution, with a no-op stand-in for its playback library (it renders to stdout).
tmp=$(mktemp -d); (cd "$tmp" && apt-get download -q espeak-ng espeak-ng-data libespeak-ng1 libsonic0)
for f in "$tmp"/*.deb; do dpkg -x "$f" "$tmp/root"; done
gcc -shared -fPIC -O2 -o .gpu/libpcaudio.so.0 -Wl,-soname,libpcaudio.so.0 scripts/device/pcaudio_stub.c
tar -C "$tmp/root" -czf .gpu/espeak.tgz usr
# The corpus plan needs wordfreq and the treebank, which stay here; the machine renders it.
.venv/bin/python - <<'PY'
import gzip, json
from dataclasses import asdict
from pathlib import Path
from training.corpus import CorpusConfig, plan, select_sentences
config = CorpusConfig(out=Path("unused"), word_sequences=20000)
items = plan(config, select_sentences(config))
Path(".gpu/plan.json.gz").write_bytes(gzip.compress(json.dumps([asdict(i) for i in items]).encode()))
PY
du -sh .gpu
