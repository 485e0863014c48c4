#!/usr/bin/env bash
# `make sanitize`: sparse_ops._C built with AddressSanitizer + UndefinedBehaviorSanitizer in a
# scratch copy of the tree, then the C++ kernel tests and the torch-op tests (fuzz included)
# run against it. About 6 minutes to build on 2 cores; the tests run ~2x slower than usual.
# Any out-of-bounds access or undefined behaviour aborts the run (non-zero exit).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${SANITIZE_DIR:-${TMPDIR:-/tmp}/sparse-ops-sanitize}
py="$root/.venv/bin/python"
rm -rf "$work" && mkdir -p "$work"
tar -C "$root" --exclude=./.venv --exclude=./build --exclude='*.so' --exclude=./.git -cf - . \
  | tar -C "$work" -xf -
cd "$work"
SPARSE_OPS_SANITIZE=1 NPY_NUM_BUILD_JOBS=2 "$py" setup.py -q build_ext --inplace
asan=$(nm -u sparse_ops/_C*.so | grep -c __asan_report || true)
[ "$asan" -gt 0 ] || { echo "not an ASan build" >&2; exit 1; }
export LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:symbolize=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# The copy under the installed names only (as make build does), not its root: the root's
# generic folder names (kernels/) must not shadow installed packages (transformers probes one).
mkdir -p "$work/.dev"
ln -sfn "$work/sparse_ops" "$work/.dev/sparse_ops"
ln -sfn "$work/simulator" "$work/.dev/sparse_accel_sim"
export PYTHONPATH="$work/.dev" TRITON_INTERPRET=1
"$py" -c "import sparse_ops, sys; assert sparse_ops.__file__.startswith('$work'), sparse_ops.__file__"
# pytest from the copy's root (its conftest hides the root's generic names again). The peak-RSS
# bounds of checkpoint loading are left to `make test`: under ASan every allocation carries
# redzones and freed memory sits in quarantine, so a process's peak RSS measures the sanitizer.
"$py" -m pytest -q -x -p no:cacheprovider tests/csrc tests/sparse_ops \
  -k "not test_peak_memory_of_a_load" "$@"
