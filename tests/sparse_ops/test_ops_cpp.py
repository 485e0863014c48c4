"""The C++ custom ops under torch.compile (opcheck, products and gradients against the
reference: the conformance suite, test_conformance.py)."""

from __future__ import annotations

import pytest
import torch

import sparse_ops as so
from sparse_ops.ops_cpp import OPS
from tests.helpers import rel_err


def _model(layout, kw):
    torch.manual_seed(0)
    dense = torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.ReLU(), torch.nn.Linear(96, 32))
    return so.sparsify(dense, layout, **kw)


@pytest.mark.parametrize(
    "layout,kw",
    [("csr", {"density": 0.2}), ("bitmap", {"density": 0.5}),
     ("bsr", {"density": 0.5, "blocksize": (16, 16)}), ("nm", {"n": 2, "m": 4})],
)
def test_compile_fullgraph_forward_backward(layout, kw):
    torch._dynamo.reset()
    model = _model(layout, kw)
    assert len(model.sparsified) == 2
    x = torch.randn(7, 64)
    eager_out = model(x)
    eager_out.square().sum().backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    out = compiled(x)
    out.square().sum().backward()
    assert rel_err(out, eager_out) < 1e-6
    for p, g in zip(model.parameters(), eager_grads, strict=True):
        assert rel_err(p.grad, g) < 1e-6


def test_compile_inductor_forward():
    torch._dynamo.reset()
    model = _model("nm", {"n": 2, "m": 4})
    x = torch.randn(5, 64)
    compiled = torch.compile(model, fullgraph=True)
    assert rel_err(compiled(x), model(x)) < 1e-5


def test_cpp_kernel_rejects_bad_indices_through_op():
    crow = torch.tensor([0, 1, 3], dtype=torch.int32)
    col = torch.tensor([0, 9, 1], dtype=torch.int16)
    with pytest.raises(ValueError, match="col_indices"):
        OPS["csr"].spmm(crow, col, torch.ones(3), torch.ones(4, 2))
