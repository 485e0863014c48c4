#!/usr/bin/env bash
# Builds the wheel, installs it into a fresh venv (CPU torch from the pinned requirements
# first, as the README says, without the triton extra), checks its top-level names are only the
# project's own, that the Triton kernels ship and ask for triton by name, and runs the README's
# usage example from another directory.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
.venv/bin/python -m pip wheel -q --no-build-isolation --no-deps -w "$WORK/dist" .
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q "$(grep '^torch==' requirements.txt)" \
  "$(grep '^numpy==' requirements.txt)"
"$WORK/venv/bin/pip" install -q "$WORK"/dist/sparse_ops-*.whl
# The first ```python block of the README, run outside the repository.
awk '/^```python$/{f=1; next} /^```$/{if (f) exit} f' "$ROOT/README.md" > "$WORK/example.py"
cd "$WORK"
"$WORK/venv/bin/python" - <<'PY'
# The installed wheel's top-level names are only the project's own.
import importlib.metadata as md
import importlib.util
import sparse_accel_sim, sparse_ops  # noqa: F401
files = md.distribution("sparse_ops").files
top = {f.parts[0] for f in files if not f.parts[0].endswith((".dist-info", ".data"))}
assert top == {"sparse_ops", "sparse_accel_sim"}, top
kernels = {str(f) for f in files if f.parts[:2] == ("sparse_ops", "kernels")}
assert "sparse_ops/kernels/csr.py" in kernels, sorted(kernels)
# A CPU install (torch + numpy, no triton extra): sparse_ops runs, the Triton kernels say what
# they need instead of failing inside an import.
if importlib.util.find_spec("triton") is None:
    try:
        import sparse_ops.kernels  # noqa: F401
    except ImportError as e:
        assert "triton" in str(e), e
    else:
        raise AssertionError("sparse_ops.kernels imported without triton")
else:
    import sparse_ops.kernels  # noqa: F401
print("imports ok; top-level names:", sorted(top))
PY
"$WORK/venv/bin/python" example.py
echo "wheel check: README example ran from $WORK"
