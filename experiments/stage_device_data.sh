#!/usr/bin/env bash
# Stages what experiments/device_checks.sh needs on a GPU machine that cannot reach the network.
#
#   bash experiments/stage_device_data.sh [DATASETS_DIR]   # default ../shared/datasets
#
# Copies the datasets the checks read into .gpu_data/ (about 19 MB, same layout as DATASETS_DIR) and
# downloads wheels of the dependencies missing from the device image (ml-collections, tensorboardX)
# into .whl/. Both folders are git-ignored; the device tool's `carry` takes them along. The data
# licences forbid redistribution: never commit these copies.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC="${1:-../shared/datasets}"
DST=.gpu_data

for f in yoochoose_rsc15_100k/yoochoose-clicks-100k_train_full.txt \
  yoochoose_rsc15_100k/yoochoose-clicks-100k_test.txt \
  diginetica_dynamicrec_sessions/diginetica.csv \
  ml1m_sasrec/ml-1m.txt; do
  mkdir -p "$DST/$(dirname "$f")"
  cp "$SRC/$f" "$DST/$f"
done
rm -rf "$DST/ml1m_sasrec/gsasrec_split"
cp -r "$SRC/ml1m_sasrec/gsasrec_split" "$DST/ml1m_sasrec/gsasrec_split"

PY="${PYTHON:-.venv/bin/python}"
mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: -d .whl ml-collections tensorboardX
du -sh "$DST" .whl
