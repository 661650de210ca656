#!/usr/bin/env bash
# Every GPU check of the open issues in one call to the device machine, most important first.
#
#   bash experiments/stage_device_data.sh        # here, once: data into .gpu_data/, wheels into .whl/
#   # device tool: run with carry [".gpu_data", ".whl"], timeout_s 590:
#   bash experiments/device_checks.sh 560        # BUDGET seconds for all steps together
#
# Results go to $OUT (the device tool's folder that comes back; /tmp/seqrec_device otherwise):
#   log.txt              every step's output, with the seconds left when it started
#   benchmarks.jsonl     GRU4Rec speed anchors and SASRec speed (experiments/benchmarks.jsonl rows)
#   sequential.jsonl     gSASRec result row (experiments/sequential/results.jsonl; "time_limited": true
#                        when its limit, not early stopping, ended it)
#   gsasrec_metrics.jsonl  its per-epoch metrics (validation curve)
#   fidelity.jsonl       GRU4Rec fidelity rows, 3 seeds each (experiments/gru4rec_fidelity/results.jsonl)
#   profile_b512.json    per-kernel device time of the batch-512 GRU4Rec step (experiments/profile.py)
#   profile_sasrec.json  the same for SASRec's training step at the paper's settings (if time is left)
#                        (benchmarks.jsonl also gets gSASRec's speed at two scoring chunk sizes, last)
# A step that would start with less time left than its estimate is skipped, and the log says so.
# STEPS="name ..." runs only the named steps (names as in the log, e.g. STEPS="env gsasrec" for a
# second call that gives gSASRec the rest of the device time); GSASREC_SECS sets gSASRec's
# training time limit (default: what is left of the budget minus 200 s, at most 360 s).
# Rows are appended to the repository's result files by hand, after reading the log.
# A CPU smoke test of the script itself (tiny models, two epochs):
#   OUT=/tmp/dc PYTHON=.venv/bin/python SMOKE_GRU='--config.n_epochs=2 --config.layers=(32,)
#   --config.n_sample=128' SMOKE_SEQ='--config.n_epochs=2 --config.sasrec.hidden=16
#   --config.sasrec.max_len=50' bash experiments/device_checks.sh 3000
set -uo pipefail
cd "$(dirname "$0")/.."
BUDGET="${1:-560}"
OUT="${OUT:-/tmp/seqrec_device}"
D="${DATA:-.gpu_data}"
RUNS=/tmp/seqrec_runs  # scratch workdirs, emptied first so that no earlier run's files come back
rm -rf "$RUNS"
mkdir -p "$OUT" "$RUNS"
LOG="$OUT/log.txt"
START=$(date +%s)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"

left() { echo $((BUDGET - ($(date +%s) - START))); }

# step NAME ESTIMATED_SECONDS COMMAND...: runs COMMAND under what is left of the budget.
step() {
  local name=$1 need=$2
  shift 2
  if [ -n "${STEPS:-}" ] && [[ " $STEPS " != *" $name "* ]]; then
    return
  fi
  if [ "$(left)" -lt "$need" ]; then
    echo "== SKIP $name: $(left) s left, needs ~$need s" | tee -a "$LOG"
    return
  fi
  echo "== $name ($(left) s left)" | tee -a "$LOG"
  local t0=$(date +%s)
  timeout "$(left)" "$@" >>"$LOG" 2>&1
  echo "== $name: rc=$? in $(($(date +%s) - t0)) s" | tee -a "$LOG"
}

if [ -d .whl ]; then
  "$PY" -m pip install -q --no-index --no-deps --find-links .whl ml-collections tensorboardX >>"$LOG" 2>&1
fi
step env 20 "$PY" -c 'import jax, flax, optax, orbax.checkpoint, ml_collections; print(jax.__version__, jax.devices())'

RSC="--config=seqrec/configs/gru4rec_rsc15_100k.py
  --config.data.train_path=$D/yoochoose_rsc15_100k/yoochoose-clicks-100k_train_full.txt
  --config.data.test_path=$D/yoochoose_rsc15_100k/yoochoose-clicks-100k_test.txt"
DIGI="--config=seqrec/configs/gru4rec_diginetica_dynamicrec.py
  --config.data.train_path=$D/diginetica_dynamicrec_sessions/diginetica.csv"
G="${SMOKE_GRU:-}"  # appended to GRU4Rec commands (empty on the GPU)
S="${SMOKE_SEQ:-}"  # appended to SASRec commands
ML1M="$D/ml1m_sasrec/ml-1m.txt"
BENCH="experiments/benchmark.py --output=$OUT/benchmarks.jsonl"

# Issue 2: the four speed anchors (training at three settings; evaluation comes with each, and
# the diginetica one also times evaluation at batches 256 and 1024: same numbers, other steps).
step bench-rsc15-b32 60 "$PY" $BENCH $RSC --config.n_epochs=3 --label=rsc15-100k-xe-100u-b32 $G
step bench-digi-b128 60 "$PY" $BENCH $DIGI --config.n_epochs=3 --label=diginetica-bprmax-512u-b128 \
  --eval_batch_sizes=256,1024 $G
step bench-digi-b512 60 "$PY" $BENCH $DIGI --config.n_epochs=3 --config.batch_size=512 \
  --label=diginetica-bprmax-512u-b512 $G

# Issue 3: SASRec speed at the paper's settings (positions/s, full ranking of all 6,040 users).
step bench-sasrec 60 "$PY" experiments/benchmark_sequences.py --config=seqrec/configs/sasrec_ml1m.py \
  --config.data.path="$ML1M" --config.n_epochs=5 --config.eval.every_epochs=1000 \
  --output="$OUT/benchmarks.jsonl" --label=sasrec-ml1m-paper $S

# Issue 3: gSASRec to convergence (or as far as the budget goes), leaving time for the rest.
GS_LIMIT=$(($(left) - 200))
[ "$GS_LIMIT" -gt 360 ] && GS_LIMIT=360
GS_LIMIT="${GSASREC_SECS:-$GS_LIMIT}"
[ "$GS_LIMIT" -lt 60 ] && GS_LIMIT=60
step gsasrec 120 "$PY" experiments/seeds.py --config=seqrec/configs/gsasrec_ml1m.py \
  --config.data.path="$ML1M" --config.time_limit_secs="$GS_LIMIT" --seeds=0 \
  --label=gsasrec-ml1m-gpu --workdir_root="$RUNS" --output="$OUT/sequential.jsonl" $S
cp "$RUNS/gsasrec-ml1m-gpu-seed0/metrics.jsonl" "$OUT/gsasrec_metrics.jsonl" 2>/dev/null

# Issue 2: where the batch-512 step spends its time.
step profile-b512 60 "$PY" experiments/profile.py $DIGI --config.batch_size=512 --what=train \
  --chunks=4 --out="$RUNS/profile_b512" $G
cp "$RUNS/profile_b512/summary.json" "$OUT/profile_b512.json" 2>/dev/null

# Issue 2: fidelity on the GPU with the current code (the CPU rows already are).
step fidelity-rsc15 90 "$PY" experiments/seeds.py $RSC --seeds=0,1,2 \
  --label=gru4rec-rsc15-official-params-gpu --workdir_root="$RUNS" --output="$OUT/fidelity.jsonl" $G
step fidelity-digi 90 "$PY" experiments/seeds.py $DIGI --seeds=0,1,2 \
  --label=gru4rec-diginetica-official-params-gpu --workdir_root="$RUNS" --output="$OUT/fidelity.jsonl" $G

# Issue 2: several steps per loop iteration at batch 512.
step bench-digi-b512-unroll4 60 "$PY" $BENCH $DIGI --config.n_epochs=3 --config.batch_size=512 \
  --config.scan_unroll=4 \
  --label=diginetica-bprmax-512u-b512-unroll4 $G

# Issue 3: where SASRec's step spends its time (last: only if the budget still allows).
step profile-sasrec 60 "$PY" experiments/profile.py --config=seqrec/configs/sasrec_ml1m.py \
  --config.data.path="$ML1M" --what=train --chunks=2 --out="$RUNS/profile_sasrec" $S
cp "$RUNS/profile_sasrec/summary.json" "$OUT/profile_sasrec.json" 2>/dev/null

# Issue 3: gSASRec's step with its catalogue scored in chunks of 1,024 (the config, chosen on a
# 2-core CPU) against one product: which is faster on this GPU (the loss is the same either way).
for chunk in 1024 0; do
  step "bench-gsasrec-chunk$chunk" 60 "$PY" experiments/benchmark_sequences.py \
    --config=seqrec/configs/gsasrec_ml1m.py --config.data.path="$ML1M" --config.n_epochs=3 \
    --config.eval.every_epochs=1000 --config.negative_score_chunk=$chunk \
    --output="$OUT/benchmarks.jsonl" --label=gsasrec-ml1m-chunk$chunk $S
done
echo "== done, $(left) s of the budget left" | tee -a "$LOG"
