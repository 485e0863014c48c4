# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PY      := .venv/bin/python
STAMP   := .venv/.installed
SOURCES := $(wildcard csrc/*.cpp csrc/*.h) setup.py pyproject.toml

.PHONY: demo test test-chaos build kernels bench models dst dse load wheel-check sanitize clean

$(STAMP): requirements.txt requirements-nodeps.txt
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

# The C++ extension sparse_ops/_C*.so, rebuilt when a source changes, and a development
# install under the wheel's names (`pip install -e .` would compile the extension a second
# time): .venv/dev holds two links, sparse_ops -> sparse_ops/ and sparse_accel_sim ->
# simulator/, and a .pth file puts .venv/dev (not the repository root) on the venv's path.
DEV := .venv/dev
.venv/.built: $(STAMP) $(SOURCES)
	$(PY) setup.py -q build_ext --inplace
	mkdir -p $(DEV)
	ln -sfn $(CURDIR)/sparse_ops $(DEV)/sparse_ops
	ln -sfn $(CURDIR)/simulator $(DEV)/sparse_accel_sim
	$(PY) -c "import os, site, sys; d = site.getsitepackages()[0]; \
	  os.path.exists(d + '/sparse_ops_repo.pth') and os.remove(d + '/sparse_ops_repo.pth'); \
	  open(d + '/sparse_ops_dev.pth', 'w').write(sys.argv[1])" "$(CURDIR)/$(DEV)"
	touch .venv/.built

build: .venv/.built

# The main job: the claims report (real kernels + simulator) on CPU defaults.
demo: build
	$(PY) -m bench.claims

kernels: build
	$(PY) -m bench.kernels

test: build
	$(PY) -m ruff check .
	TRITON_INTERPRET=1 $(PY) -m pytest -q -p no:cacheprovider tests

# Dask kill/resume under wall-clock deadlines (marked `chaos`): run apart from the unit tests.
test-chaos: build
	$(PY) -m pytest -q -p no:cacheprovider -m chaos tests/simulator

bench: build
	$(PY) -m pytest -q bench --benchmark-only

# Real models end to end (Hugging Face Llama-style decoder and BERT encoder).
models: build
	$(PY) -m bench.models

# The dynamic-sparse-training study (Fantastic Weights criteria) and its speed benchmark.
dst: build
	$(PY) -m bench.dst

# Design-space exploration: points/s local vs Dask, sparse-point speedup, Pareto front.
dse: build
	$(PY) -m bench.dse

# Latency under a competing process, interleaved with torch ops, and serving threads.
load: build
	$(PY) -m bench.load

# The C++ kernel and torch-op tests against an ASan + UBSan build of sparse_ops._C (~10 min;
# run before each stop, not in CI: see the README).
sanitize: $(STAMP)
	bash .ci/sanitize.sh

# The built wheel installed into a fresh venv, and the README example run from elsewhere.
wheel-check: build
	bash .ci/wheel_check.sh

clean:
	rm -rf build dist .venv sparse_ops/_C*.so
