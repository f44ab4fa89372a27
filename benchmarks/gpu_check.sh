#!/usr/bin/env bash
# GPU check (issue 16): on a CUDA machine, in under 8 minutes,
#   (a) the `gpu`-marked tests,
#   (b) generator inference throughput: batch 1 and 64, fp32 and bf16, eager and torch.compile,
#   (c) a training step (G + D, L1 + GAN, batch 8, fp32 and bf16),
# written as a markdown report to OUT (default gpu_check.md).
#
# Usage: bash benchmarks/gpu_check.sh [OUT.md] [--cpu-smoke]
#   --cpu-smoke  run the Python parts on the CPU with tiny sizes (tests the logic; no GPU needed)
#
# Assumes a Python >= 3.11 with a CUDA build of torch already installed, plus numpy, pyyaml,
# pillow, safetensors, tqdm, tensorboard and pytest: $PYTHON, else the repository's .venv (which
# `make install` fills with the CPU build: it fails the check below), else python3. It installs
# nothing and downloads nothing (the lent GPU machines have no internet; their python3 has all of
# the above): the package runs from src/ through PYTHONPATH, so the body-model, pose-detection
# and video extras are not needed. On a machine with internet, `pip install torch` (PyPI's
# Linux wheels are CUDA builds) then `pip install -e '.[dev]'` gives such a Python.
# Exit codes: 0 done (the report says what passed), 2 usage, 3 no CUDA (or no torch),
# 4 the measurements failed.
set -uo pipefail

OUT=gpu_check.md
SMOKE=0
for arg in "$@"; do
    case "$arg" in
        --cpu-smoke) SMOKE=1 ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "gpu_check: unknown option $arg (see --help)" >&2; exit 2 ;;
        *) OUT=$arg ;;
    esac
done

case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac  # the script works from the repository root
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON=$ROOT/.venv/bin/python; else PYTHON=python3; fi
fi
START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET_S:-480}  # the whole script

# Fail fast: a Python with torch, and (unless --cpu-smoke) a CUDA device torch can see.
if ! info=$("$PYTHON" -c 'import sys, torch
assert sys.version_info >= (3, 11), f"Python {sys.version.split()[0]} (need >= 3.11)"
print(torch.__version__, torch.version.cuda, torch.cuda.is_available(), torch.cuda.device_count())' 2>&1); then
    echo "gpu_check: $PYTHON cannot run the check: ${info##*$'\n'}" >&2
    echo "gpu_check: set PYTHON to a Python >= 3.11 with a CUDA build of torch" >&2
    exit 3
fi
read -r TORCH_VERSION CUDA_BUILD CUDA_OK _ <<<"$info"
if [ "$SMOKE" = 0 ] && [ "$CUDA_OK" != "True" ]; then
    echo "gpu_check: no CUDA device: torch $TORCH_VERSION (CUDA build: $CUDA_BUILD) at $PYTHON sees none." >&2
    echo "gpu_check: this check needs an NVIDIA GPU; to test its logic on the CPU: bash benchmarks/gpu_check.sh --cpu-smoke" >&2
    exit 3
fi

export PYTHONPATH="$ROOT/src:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
LOG=$(mktemp "${TMPDIR:-/tmp}/gpu_check_tests.XXXXXX")
trap 'rm -f "$LOG"' EXIT

# (a) the gpu-marked tests: only the files that have them (collecting every test module would
# import the optional extras); the gpu tests skip themselves without CUDA (--cpu-smoke).
cd "$ROOT"
mapfile -t FILES < <(grep -rlE --include='test_*.py' 'pytest\.mark\.gpu' tests | sort)
echo "gpu_check: ${#FILES[@]} test files with gpu tests: ${FILES[*]}"
T0=$(date +%s)
timeout 180 "$PYTHON" -m pytest -q -p no:cacheprovider -o addopts="" -m gpu "${FILES[@]}" >"$LOG" 2>&1
TESTS_RC=$?
TESTS_S=$(( $(date +%s) - T0 ))
tail -n 5 "$LOG"

# (b) and (c): what is left of the budget, less a margin for writing the report.
LEFT=$(( BUDGET - ($(date +%s) - START) - 30 ))
[ "$LEFT" -lt 30 ] && LEFT=30
ARGS=(--out "$OUT" --budget-s "$(( LEFT - 60 > 20 ? LEFT - 60 : 20 ))" --tests-log "$LOG"
      --tests-rc "$TESTS_RC" --tests-s "$TESTS_S" --command "bash benchmarks/gpu_check.sh $*")
[ "$SMOKE" = 1 ] && ARGS+=(--cpu-smoke)
if ! timeout "$LEFT" "$PYTHON" benchmarks/gpu_check.py "${ARGS[@]}"; then
    echo "gpu_check: the measurements failed or ran out of time (see above)" >&2
    exit 4
fi
echo "gpu_check: wrote $OUT in $(( $(date +%s) - START )) s (tests: exit code $TESTS_RC)"
