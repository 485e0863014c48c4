"""The C++ custom ops as PyTorch expects of a custom op: opcheck and torch.compile."""

from __future__ import annotations

import pytest
import torch

import sparse_ops as so
from sparse_ops.ops_cpp import OPS
from tests.helpers import CASES, random_sparse, rel_err


def _samples(layout, shape, kw, dtype):
    s, _ = random_sparse(layout, shape, kw, dtype=dtype)
    ops = OPS[layout]
    m, k = shape
    x = torch.randn(k, 5, dtype=dtype)
    d = torch.randn(m, 5, dtype=dtype)
    st, p = s.structure(), s.params()
    xb = torch.randn(3, k, dtype=dtype)
    bias = torch.randn(m, dtype=dtype)
    return [
        (ops.spmm, (*st, s.values, x, *p)),
        (ops.spmm_t, (*st, s.values, d, k, *p)),
        (ops.sddmm, (*st, d, x, *p)),
        (ops.linear, (*st, s.values, xb, bias, *p)),
        (ops.linear, (*st, s.values, xb[:1], None, *p)),
    ]


@pytest.mark.parametrize("idx", range(len(CASES)))
def test_opcheck(idx):
    layout, shape, kw = CASES[idx]
    for op, args in _samples(layout, shape, kw, torch.float64):
        torch.library.opcheck(op, args)
        grad_args = tuple(
            a.clone().requires_grad_(True) if isinstance(a, torch.Tensor) and a.is_floating_point()
            else a for a in args
        )
        torch.library.opcheck(op, grad_args)


@pytest.mark.parametrize("idx", range(len(CASES)))
def test_ops_match_reference(idx):
    from sparse_ops.registry import backend_ops
    layout, shape, kw = CASES[idx]
    ref = backend_ops(layout, "reference")
    def ref_linear(*args):
        *struct, values, xb, bias, = args[: ref.n_struct + 3]
        params = args[ref.n_struct + 3:]
        y = ref.spmm(*struct, values, xb.t(), *params).t()
        return y if bias is None else y + bias

    for (op, args), ref_op in zip(_samples(layout, shape, kw, torch.float32),
                                  (ref.spmm, ref.spmm_t, ref.sddmm, ref_linear, ref_linear),
                                  strict=True):
        dargs = tuple(a.double() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                      for a in args)
        assert rel_err(op(*args), ref_op(*dargs)) < 1e-5


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
