#!/usr/bin/env bash
# Builds the wheel, installs it into a fresh venv (CPU torch from the pinned requirements
# first, as the README says), and runs the README's usage example from another directory.
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
"$WORK/venv/bin/python" -c "import simulator, sparse_ops; print('imports ok')"
"$WORK/venv/bin/python" example.py
echo "wheel check: README example ran from $WORK"
