"""matmul / linear on each CPU backend against float64 dense, forward and backward."""

from __future__ import annotations

import os

import pytest
import torch

import sparse_ops as so
from tests.helpers import dense_at_slots, random_sparse, rel_err

# The Triton backend runs here only under its interpreter (make test sets TRITON_INTERPRET=1).
BACKENDS = ["reference", "cpp"] + (["triton"] if os.environ.get("TRITON_INTERPRET") == "1" else [])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n_cols", [1, 5, 67])
def test_forward_fp32(case, backend, n_cols):
    layout, shape, kw = case
    s, dense = random_sparse(layout, shape, kw)
    x = torch.randn(shape[1], n_cols)
    y = so.matmul(s, x, backend=backend)
    assert y.shape == (shape[0], n_cols) and y.dtype == torch.float32
    assert not torch.isnan(y).any()
    assert rel_err(y, dense @ x.double()) < 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_fp64_and_low_precision(case, backend):
    layout, shape, kw = case
    s, dense = random_sparse(layout, shape, kw, dtype=torch.float64)
    x = torch.randn(shape[1], 7, dtype=torch.float64)
    assert rel_err(so.matmul(s, x, backend=backend), dense @ x) < 1e-12
    for dt in (torch.bfloat16, torch.float16):
        sl = s.to(dtype=dt)
        y = so.matmul(sl, x.to(dt), backend=backend)
        assert y.dtype == dt
        assert rel_err(y, sl.to_dense().double() @ x.to(dt).double()) < 2e-2


@pytest.mark.parametrize("backend", BACKENDS)
def test_backward_matches_dense(case, backend):
    layout, shape, kw = case
    s, dense = random_sparse(layout, shape, kw, dtype=torch.float64)
    values = s.values.clone().requires_grad_(True)
    x = torch.randn(shape[1], 6, dtype=torch.float64, requires_grad=True)
    gy = torch.randn(shape[0], 6, dtype=torch.float64)
    so.matmul(s.with_values(values), x, backend=backend).backward(gy)
    # Dense twin: the gradient of W at the stored positions.
    w = dense.clone().requires_grad_(True)
    xd = x.detach().clone().requires_grad_(True)
    (w @ xd).backward(gy)
    assert rel_err(x.grad, xd.grad) < 1e-12
    # The values' gradient is the float64 dense weight gradient read at the stored slots...
    gv_dense = dense_at_slots(s, w.grad)
    assert values.grad.shape == s.values.shape
    assert rel_err(values.grad, gv_dense) < 1e-12
    # ... and agrees with the reference sddmm too.
    gv_want = _values_grad_reference(s, gy, x.detach())
    assert rel_err(values.grad, gv_want) < 1e-12


def _values_grad_reference(s, gy, x):
    from sparse_ops.registry import backend_ops
    ops = backend_ops(s.layout, "reference")
    return ops.sddmm(*s.structure(), gy, x, *s.params())


def test_sddmm_reference_is_dense_gradient(case):
    layout, shape, kw = case
    s, dense = random_sparse(layout, shape, kw, dtype=torch.float64)
    gy = torch.randn(shape[0], 4, dtype=torch.float64)
    x = torch.randn(shape[1], 4, dtype=torch.float64)
    gv = _values_grad_reference(s, gy, x)
    full = gy @ x.T
    # Every stored (nonzero) entry's gradient equals the dense gradient there.
    got = s.with_values(gv).to_dense() if layout != "nm" else None
    if got is not None:
        mask = dense != 0
        assert torch.allclose(got[mask], full[mask])
    else:
        cols = s.columns()
        assert torch.allclose(gv, full.gather(1, cols))


@pytest.mark.parametrize("backend", BACKENDS)
def test_double_backward(backend):
    s, _ = random_sparse("csr", (9, 11), {}, dtype=torch.float64)
    values = s.values.clone().requires_grad_(True)
    x = torch.randn(11, 3, dtype=torch.float64, requires_grad=True)

    def f(v, xx):
        return so.matmul(s.with_values(v), xx, backend=backend)

    assert torch.autograd.gradcheck(f, (values, x))
    assert torch.autograd.gradgradcheck(f, (values, x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_matches_f_linear(backend):
    s, dense = random_sparse("nm", (13, 24), {"n": 2, "m": 4})
    x = torch.randn(2, 5, 24)
    b = torch.randn(13)
    y = so.linear(x, s, b, backend=backend)
    want = torch.nn.functional.linear(x.double(), dense, b.double())
    assert y.shape == (2, 5, 13)
    assert rel_err(y, want) < 1e-5


def test_empty_products():
    for layout, kw in [("csr", {}), ("bsr", {"blocksize": (2, 3)}), ("nm", {"n": 2, "m": 4})]:
        s = so.to_sparse(torch.zeros(4, 6), layout, **kw)
        for backend in BACKENDS:
            y = so.matmul(s, torch.randn(6, 3), backend=backend)
            assert torch.equal(y, torch.zeros(4, 3))
            assert so.matmul(s, torch.randn(6, 0), backend=backend).shape == (4, 0)
        s0 = so.to_sparse(torch.zeros(0, 6), layout, **kw)
        assert so.matmul(s0, torch.randn(6, 3), backend="cpp").shape == (0, 3)


def test_bad_operands():
    s, _ = random_sparse("csr", (5, 7), {})
    with pytest.raises(ValueError, match="x: has 6 rows"):
        so.matmul(s, torch.randn(6, 2))
    with pytest.raises(TypeError, match="x: dtype"):
        so.matmul(s, torch.randn(7, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="x: expected a 2-D"):
        so.matmul(s, torch.randn(7))
    with pytest.raises(TypeError, match="s: expected a sparse_ops matrix"):
        so.matmul(torch.randn(5, 7), torch.randn(7, 2))
    with pytest.raises(ValueError, match="backend"):
        so.matmul(s, torch.randn(7, 2), backend="cuda")
    with pytest.raises(ValueError, match="x: last dim"):
        so.linear(torch.randn(3, 6), s)
    with pytest.raises(ValueError, match="bias"):
        so.linear(torch.randn(3, 7), s, torch.randn(4))
    with pytest.raises(TypeError, match="x: expected a torch.Tensor"):
        so.matmul(s, [[1.0]])
