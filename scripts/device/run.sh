#!/bin/bash
# Device-side: render the corpus, probe the step rate, train for the time left, return the model.
set -euo pipefail
T0=$(date +%s); DEADLINE=$((T0 + ${BUDGET_S:-545}))
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; WORK=${WORK:-/tmp/gpu}; mkdir -p $WORK
log() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
if [ -z "${SKIP_INSTALL:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
  tar -C $WORK -xzf .gpu/espeak.tgz && cp .gpu/libpcaudio.so.0 $WORK/usr/lib/x86_64-linux-gnu/
  export PATH=$WORK/usr/bin:$PATH LD_LIBRARY_PATH=$WORK/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export ESPEAK_DATA_PATH=$WORK/usr/lib/x86_64-linux-gnu/espeak-ng-data
fi
PY=${PY:-python3}
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
$PY -c "import torch, transformers, datasets, pyarrow; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__, 'datasets', datasets.__version__, 'pyarrow', pyarrow.__version__)"
echo "merhaba" | espeak-ng -v tr --stdout | wc -c
log render; $PY .gpu/render.py $WORK/corpus 2>&1 | tail -3
COMMON="--dataset $WORK/corpus --preset small --per_device_train_batch_size ${BATCH:-32} --train_sampling_strategy group_by_length \
  --dataloader_num_workers ${WORKERS:-12} --dataloader_persistent_workers --save_strategy no --seed 0 ${EXTRA:-}"
if [ -n "${FIXED_STEPS:-}" ]; then STEPS=$FIXED_STEPS; LEFT=$(( DEADLINE - $(date +%s) - ${TAIL_S:-75} )); else
log probe
$PY -m training $COMMON --output_dir $WORK/probe --max_steps ${PROBE_STEPS:-300} --report_to none --max_eval_samples 16 \
  --logging_steps 40 > $WORK/probe.log 2>&1 || { tail -30 $WORK/probe.log; exit 1; }
# tqdm's last smoothed rate (start-up excluded), else the Trainer's whole-run average
RATE=$($PY - "$WORK" "${PROBE_STEPS:-300}" <<'PYEOF'
import json, re, sys
text = open(sys.argv[1] + "/probe.log").read().replace("\r", "\n")
bar = [m for m in re.findall(r"(\d+)/(\d+) \[[0-9:]+<[0-9:?]+, +([0-9.]+)(it/s|s/it)\]", text) if m[1] == sys.argv[2]]
h = json.load(open(sys.argv[1] + "/probe/evaluation.json"))["history"]
avg = [e for e in h if "train_steps_per_second" in e][-1]["train_steps_per_second"]
print(max(avg, (float(bar[-1][2]) if bar[-1][3] == "it/s" else 1 / float(bar[-1][2])) if bar else avg))
PYEOF
)
LEFT=$(( DEADLINE - $(date +%s) - ${TAIL_S:-75} ))
STEPS=$($PY -c "print(max(50, int($RATE * $LEFT * 0.85)))")
log "probe rate $RATE steps/s; $LEFT s left for training: --max_steps $STEPS"
fi
log "training: --max_steps $STEPS, $LEFT s left"
MINUTES=$($PY -c "print(round($LEFT / 60, 2))")
$PY -m training $COMMON --output_dir $WORK/train --max_steps $STEPS --max_train_minutes $MINUTES \
  --learning_rate ${LR:-1e-3} --warmup_steps ${WARMUP:-500} --weight_decay 0.005 --lr_scheduler_type linear \
  --logging_steps 100 --report_to tensorboard --max_eval_samples 200 --test_splits test,test_heldout_voice \
  > $WORK/train.log 2>&1 || { tail -40 $WORK/train.log; cp $WORK/train.log $OUT/ || true; exit 1; }
log trained; grep -E "epoch [0-9.]+: WER|evaluation:|time budget" $WORK/train.log | tail -12
cp $WORK/train/model.safetensors $OUT/
tar -C $WORK/train --exclude model.safetensors --exclude 'checkpoint-*' -czf $OUT/train-rest.tgz .
tr '\r' '\n' < $WORK/train.log | grep -v "^\s*$" | tail -400 > $OUT/train.log
cp $WORK/probe.log $OUT/ 2>/dev/null || true
log done; ls -la $OUT
