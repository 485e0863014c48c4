# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PY      := .venv/bin/python
STAMP   := .venv/.installed
SOURCES := $(wildcard csrc/*.cpp csrc/*.h) setup.py

.PHONY: demo test build kernels bench clean

$(STAMP): requirements.txt
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade -r requirements.txt
	touch $(STAMP)

# The C++ extension sparse_ops/_C*.so, rebuilt when a source changes.
.venv/.built: $(STAMP) $(SOURCES)
	$(PY) setup.py -q build_ext --inplace
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

clean:
	rm -rf build .venv sparse_ops/_C*.so
