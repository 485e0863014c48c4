#!/usr/bin/env bash
# On a machine with an NVIDIA GPU, with that machine's own python3, torch and triton (not the
# CPU .venv; CI has no GPU and never runs this): build the extension against that torch, time
# the Triton kernels (bench.cuda: bf16 and int8 values per layout against cuBLAS, with a
# float64 check of every variant), then run the tests that compile every Triton kernel
# (tests/kernels, test_cuda, test_ops_triton, the int8 Triton test) with one config per kernel.
#   .ci/cuda.sh [LOGDIR]    BENCH_ARGS, BENCH_S, TEST_S, BUILD_S override the defaults below
set -uo pipefail
cd "$(dirname "$0")/.."
LOG=${1:-bench/out/cuda}
mkdir -p "$LOG"
PY=${PY:-python3}
export PYTHONUNBUFFERED=1
t0=$(date +%s)
stamp() { echo "== $1 at +$(( $(date +%s) - t0 )) s"; }

stamp env
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv
  lscpu | grep -E "Model name|Vendor|^CPU\(s\)|Flags" | sed 's/Flags:.*/&/' | cut -c1-4000
  echo "amx: $(grep -o 'amx[a-z_0-9]*' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  g++ --version | head -1
  $PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
} > "$LOG/env.txt" 2>&1
cat "$LOG/env.txt" | grep -v Flags

stamp build
if ! NPY_NUM_BUILD_JOBS=$(nproc) timeout "${BUILD_S:-240}" $PY setup.py -q build_ext --inplace \
    > "$LOG/build.log" 2>&1; then
  tail -40 "$LOG/build.log"; stamp "build failed"; exit 1
fi

bench_rc=0
if [ "${BENCH_S:-240}" != 0 ]; then  # BENCH_S=0: the tests alone
  stamp bench
  # shellcheck disable=SC2086
  timeout "${BENCH_S:-240}" $PY -m bench.cuda --out "$LOG" ${BENCH_ARGS:---n 1 16 4096} \
    > "$LOG/bench.log" 2>&1
  bench_rc=$?
  grep -v "^{" "$LOG/bench.log" | tail -80
fi

stamp tests
SPARSE_OPS_TRITON_AUTOTUNE=0 timeout "${TEST_S:-150}" $PY -m pytest -q -p no:cacheprovider \
  -n "${TEST_WORKERS:-8}" --timeout 120 -rfE --junitxml="$LOG/tests.xml" \
  tests/kernels tests/sparse_ops/test_cuda.py tests/sparse_ops/test_ops_triton.py \
  tests/sparse_ops/test_quantize.py::test_triton_backend_int8 > "$LOG/tests.log" 2>&1
test_rc=$?
tail -25 "$LOG/tests.log"
stamp "done (bench rc $bench_rc, tests rc $test_rc)"
[ "$bench_rc" = 0 ] && [ "$test_rc" = 0 ]
