#!/usr/bin/env bash
# On a CPU with AMX-INT8 (an Intel Xeon from Sapphire Rapids on, e.g. the GPU machine's host),
# with that machine's own python3 and torch: build the extension (unless BUILD=0: already
# built, e.g. by .ci/cuda.sh), run the W8A8 tests (every engine the CPU has, tdpbssd among
# them) and time the W8A8 prefill against dense bf16 (torch's bf16 on AMX) on 2 threads (the
# issue's condition) and on all cores, tdpbssd beside vpdpbusd in the same run (bench.int8
# --dots vnni). CI has no such CPU and never runs this.
#   .ci/amx.sh [LOGDIR]    BENCH_N (default "1 16 256"), BUILD_S, TEST_S, BENCH_S
set -uo pipefail
cd "$(dirname "$0")/.."
LOG=${1:-bench/out/amx}
mkdir -p "$LOG"
PY=${PY:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH=.
t0=$(date +%s)
stamp() { echo "== $1 at +$(( $(date +%s) - t0 )) s"; }

stamp env
{ lscpu | grep -E "Model name|Vendor|^CPU\(s\)|Thread|Socket|L2|L3|NUMA node0"
  echo "amx: $(grep -o 'amx[a-z_0-9]*' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  $PY -c "import torch; print('torch', torch.__version__)"
} > "$LOG/env.txt" 2>&1
cat "$LOG/env.txt"

if [ "${BUILD:-1}" != 0 ]; then
  stamp build
  if ! NPY_NUM_BUILD_JOBS=$(nproc) timeout "${BUILD_S:-240}" $PY setup.py -q build_ext \
      --inplace > "$LOG/build.log" 2>&1; then
    tail -40 "$LOG/build.log"; stamp "build failed"; exit 1
  fi
fi
$PY -c "from sparse_ops import _C; print('simd', _C.simd_level(), 'int8 dots', _C._int8_dots(), \
'auto', _C._int8_dot())" | tee -a "$LOG/env.txt"

stamp tests
timeout "${TEST_S:-120}" $PY -m pytest -q -p no:cacheprovider -n 8 -rfE \
  tests/sparse_ops/test_w8a8.py > "$LOG/tests.log" 2>&1
test_rc=$?
tail -15 "$LOG/tests.log"

stamp bench
bench_rc=0
for threads in 2 "$(nproc)"; do
  n=${BENCH_N:-1 16 256}
  [ "$threads" != 2 ] && n=256
  # shellcheck disable=SC2086
  timeout "${BENCH_S:-150}" $PY -m bench.int8 --threads "$threads" --n $n --rounds 11 \
    --dots vnni --out "$LOG/t$threads" > "$LOG/bench_t$threads.log" 2>&1 || bench_rc=$?
  grep -E "^\| (dense|int8pack|bitmap 0.5 int8|2:4 int8|bsr 32² 0.3 int8)|^### |Machine" \
    "$LOG/bench_t$threads.log"
done
stamp "done (tests rc $test_rc, bench rc $bench_rc)"
[ "$test_rc" = 0 ] && [ "$bench_rc" = 0 ]
