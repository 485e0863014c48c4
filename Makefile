# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PY      := .venv/bin/python
STAMP   := .venv/.installed
SOURCES := $(wildcard csrc/*.cpp csrc/*.h) setup.py pyproject.toml

.PHONY: demo test build kernels bench models dst dse load wheel-check sanitize clean

$(STAMP): requirements.txt requirements-nodeps.txt
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

# The C++ extension sparse_ops/_C*.so, rebuilt when a source changes, and the repo put on the
# venv's path (an editable install as a .pth file: `pip install -e .` would compile the
# extension a second time), so sparse_ops, kernels and simulator import from any directory.
.venv/.built: $(STAMP) $(SOURCES)
	$(PY) setup.py -q build_ext --inplace
	$(PY) -c "import site, sys; open(site.getsitepackages()[0] + '/sparse_ops_repo.pth', 'w').write(sys.argv[1])" "$(CURDIR)"
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
