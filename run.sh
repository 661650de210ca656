#!/usr/bin/env bash
# seqrec set-up and entry point.
#   ./run.sh              create .venv, install seqrec, run the default experiment
#                         (GRU4Rec vs popularity on built-in synthetic sessions, ~1 min on 2 CPU cores
#                         once installed)
#   ./run.sh test [ARGS]  the same set-up, then lint + the test suite (ARGS go to pytest), one
#                         pytest-xdist worker per core up to 4 (SEQREC_TEST_WORKERS=N to choose,
#                         0 for one process); each test file stays on one worker
#   ./run.sh main ARGS    any `python -m seqrec.main` command line, e.g.
#                         ./run.sh main --config=seqrec/configs/test.py --workdir=runs/smoke
set -euo pipefail
cd "$(dirname "$0")"
VENV="${SEQREC_VENV:-.venv}"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.seqrec-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e '.[test]'
  touch "$stamp"
fi

cmd="${1:-default}"
[ $# -gt 0 ] && shift
case "$cmd" in
  default)
    exec "$VENV/bin/python" -m seqrec.main --config=seqrec/configs/default.py \
      --workdir="runs/default-$(date +%Y%m%d-%H%M%S)" "$@"
    ;;
  test)
    "$VENV/bin/ruff" check seqrec tests experiments
    cores="$(nproc 2>/dev/null || echo 1)"
    workers="${SEQREC_TEST_WORKERS:-$((cores < 4 ? cores : 4))}"
    exec "$VENV/bin/python" -m pytest -q -n "$workers" --dist loadfile "$@"
    ;;
  main)
    exec "$VENV/bin/python" -m seqrec.main "$@"
    ;;
  *)
    echo "usage: ./run.sh [default|test [pytest args]|main ARGS]" >&2
    exit 2
    ;;
esac
