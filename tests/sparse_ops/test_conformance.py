"""Every registered layout on every backend: products against the reference (every dtype),
opcheck of the custom ops, gradients (``tests/sparse_ops/conformance.py``).

Backends: ``cpp`` (the C++ kernels, CPU), ``triton`` (the Triton kernels: under the
interpreter on a CPU with ``TRITON_INTERPRET=1``, as ``make test`` sets, or on CUDA) and
``reference``. Cases: ``tests.helpers.CASES`` (odd shapes per layout and N:M pattern).
"""

from __future__ import annotations

import os

import pytest
import torch

from sparse_ops.dtypes import VALUE_DTYPES
from tests.helpers import CASE_IDS, CASES, draw_seed
from tests.sparse_ops import conformance as cf

INTERPRET = os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")
TRITON = INTERPRET or torch.cuda.is_available()
BACKENDS = ["cpp", "reference"] + (["triton"] if TRITON else [])
DTYPES = list(VALUE_DTYPES)  # the package's one dtype table


def _device(backend: str) -> str:
    return "cuda" if backend == "triton" and not INTERPRET else "cpu"


def _ready(backend: str) -> None:
    if backend == "triton":
        from sparse_ops import ops_triton  # noqa: F401  (registers the "triton" ops)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).removeprefix("torch."))
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("idx", range(len(CASES)), ids=CASE_IDS)
def test_products_match_reference(idx, backend, dtype):
    layout, shape, options = CASES[idx]
    _ready(backend)
    g = torch.Generator().manual_seed(draw_seed())
    cf.check_products(layout, backend, shape, options, dtype, g, _device(backend))


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "reference"])
@pytest.mark.parametrize("idx", range(len(CASES)), ids=CASE_IDS)
def test_opcheck(idx, backend):
    layout, shape, options = CASES[idx]
    _ready(backend)
    g = torch.Generator().manual_seed(draw_seed())
    dtype = torch.float64 if backend == "cpp" else torch.float32
    cf.check_opcheck(layout, backend, shape, options, dtype, g, _device(backend))


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "reference"])
@pytest.mark.parametrize("idx", range(len(CASES)), ids=CASE_IDS)
def test_gradients_match_reference(idx, backend):
    layout, shape, options = CASES[idx]
    _ready(backend)
    g = torch.Generator().manual_seed(draw_seed())
    cf.check_gradients(layout, backend, shape, options, g, _device(backend))
