#!/usr/bin/env bash
# Builds the wheel, installs it into a fresh venv (CPU torch from the pinned requirements
# first, as the README says), checks its top-level names are only the project's own, and runs
# the README's usage example from another directory.
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
import sparse_accel_sim, sparse_ops, sparse_ops.kernels  # noqa: F401
files = md.distribution("sparse_ops").files
top = {f.parts[0] for f in files if not f.parts[0].endswith((".dist-info", ".data"))}
assert top == {"sparse_ops", "sparse_accel_sim"}, top
print("imports ok; top-level names:", sorted(top))
PY
"$WORK/venv/bin/python" example.py
echo "wheel check: README example ran from $WORK"
