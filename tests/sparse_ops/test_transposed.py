"""The transposed structure of CSR and BSR is data of the matrix (no hidden cache):
``S.transposed()`` computes ``(crow_t, col_t, perm_t)`` once, the products take it after their
parameters, ``S^T @ d`` (the backward) reads it, the kernels check it like any structure, a
``SparseLinear`` holds it as buffers and ``so.dst`` refreshes it after each rewrite.
"""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

import sparse_ops as so
from tests.helpers import draw_seed, rel_err

ops = torch.ops.sparse_ops
LAYOUTS = [("csr", {}), ("bsr", {"blocksize": (3, 5)})]


def _matrix(layout, kw, g, shape=(24, 35), dtype=torch.float32):
    w = torch.randn(shape, generator=g, dtype=dtype)
    return so.to_sparse(so.prune(w, layout, 0.4, **kw), layout, **kw)


@pytest.mark.parametrize("layout,kw", LAYOUTS)
def test_transposed_is_computed_once_and_right(layout, kw):
    g = torch.Generator().manual_seed(draw_seed())
    s = _matrix(layout, kw, g)
    assert s.aux() == (None, None, None)
    t = s.transposed()
    assert all(x.dtype == torch.int32 for x in t)
    assert s.transposed() is not None and all(a is b for a, b in zip(s.transposed(), t,
                                                                        strict=True))
    cols = s.shape[1] if layout == "csr" else s.shape[1] // kw["blocksize"][1]
    crow_t, col_t, perm_t = t
    assert crow_t.shape == (cols + 1,) and perm_t.shape == (s.values.shape[0],)
    # the entries of S^T in stable column order: a permutation of S's positions
    assert torch.equal(perm_t.sort().values, torch.arange(s.values.shape[0], dtype=torch.int32))
    d = torch.randn(s.shape[0], 7, generator=g)
    want = s.to_dense().double().T @ d.double()
    spmm_t = getattr(ops, f"{layout}_spmm_t")
    for n in (1, 7):
        got = spmm_t(*s.structure(), s.values, d[:, :n], s.shape[1], *s.params(), *t)
        assert rel_err(got, want[:, :n]) < 1e-5
        got0 = spmm_t(*s.structure(), s.values, d[:, :n], s.shape[1], *s.params())
        assert rel_err(got0, want[:, :n]) < 1e-5


@pytest.mark.parametrize("layout,kw", LAYOUTS)
def test_backward_reads_the_matrix_transposed_structure(layout, kw):
    """With the transposed structure given, the backward's S^T @ dY reads it: a corrupted
    perm_t makes it fail (the kernels check it), a right one gives the dense gradient."""
    g = torch.Generator().manual_seed(draw_seed())
    s = _matrix(layout, kw, g)
    s.transposed()
    x = torch.randn(s.shape[1], 6, generator=g, requires_grad=True)
    y = so.matmul(s, x)
    gy = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, gy)
    assert rel_err(gx, s.to_dense().double().T @ gy.double()) < 1e-5
    s.perm_t[0] = 10**6  # bad data in the matrix's transposed structure
    y = so.matmul(s, x)
    with pytest.raises(ValueError, match="perm_t"):
        torch.autograd.grad(y, x, gy)


@pytest.mark.parametrize("layout,kw", LAYOUTS)
def test_bad_transposed_structure_is_an_error(layout, kw):
    g = torch.Generator().manual_seed(draw_seed())
    s = _matrix(layout, kw, g)
    crow_t, col_t, perm_t = s.transposed()
    d = torch.randn(s.shape[0], 4, generator=g)
    spmm_t = getattr(ops, f"{layout}_spmm_t")
    args = (*s.structure(), s.values, d, s.shape[1], *s.params())
    with pytest.raises(ValueError, match="crow_t"):
        spmm_t(*args, crow_t[:-1], col_t, perm_t)
    with pytest.raises(ValueError, match="crow_t, col_t, perm_t"):
        spmm_t(*args, crow_t, col_t, None)
    bad = col_t.clone()
    bad[0] = 10**6
    with pytest.raises(ValueError, match="col_t"):
        spmm_t(*args, crow_t, bad, perm_t)
    with pytest.raises(TypeError, match="perm_t"):
        spmm_t(*args, crow_t, col_t, perm_t.long())


@pytest.mark.parametrize("layout,kw", LAYOUTS)
def test_sparse_linear_holds_it_as_buffers(layout, kw):
    g = torch.Generator().manual_seed(draw_seed())
    lin = nn.Linear(35, 24)
    layer = so.SparseLinear.from_dense(lin, layout, density=0.4, **kw)
    assert layer.crow_t is None
    with torch.no_grad():
        layer(torch.randn(3, 35, generator=g))
    assert layer.crow_t is None, "inference does not need it"
    x = torch.randn(5, 35, generator=g)
    layer(x).sum().backward()
    assert layer.crow_t is not None and layer.perm_t is not None
    first = layer.perm_t
    layer(x).sum().backward()
    assert layer.perm_t is first, "computed once"
    assert "crow_t" not in layer.state_dict(), "derived: not saved"
    # the gradient is that of the dense weight at the stored slots
    w = layer.weight.detach().double().requires_grad_()
    (x.double() @ w.T + layer.bias.double()).sum().backward()
    s = layer.sparse_weight()
    from tests.helpers import dense_at_slots

    layer.values.grad = None
    layer(x).sum().backward()
    assert rel_err(layer.values.grad, dense_at_slots(s, w.grad)) < 1e-5


def test_dst_rewrite_refreshes_it():
    """After a prune-and-grow update the transposed buffers describe the new structure."""
    g = torch.Generator().manual_seed(draw_seed())
    torch.manual_seed(draw_seed())
    model = nn.Sequential(nn.Linear(40, 32), nn.ReLU(), nn.Linear(32, 8))
    so.sparsify(model, "csr", density=0.3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    dst = so.dst.DynamicSparsity(model, opt, update_every=2, stop_at=100)
    x = torch.randn(16, 40, generator=g)
    for _ in range(4):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
        dst.step()
    for mod in model.modules():
        if isinstance(mod, so.SparseLinear):
            fresh = mod.sparse_weight()._replace()  # same tensors
            want = type(fresh).from_parts(
                {n: getattr(mod, n) for n in fresh.tensor_names}, fresh.shape, fresh.params(),
                validate=True).transposed()
            for a, b in zip((mod.crow_t, mod.col_t, mod.perm_t), want, strict=True):
                assert torch.equal(a, b)


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET", "0") != "1",
                    reason="the Triton kernels run on a CPU under the interpreter only")
@pytest.mark.parametrize("layout,kw", LAYOUTS)
def test_triton_uses_the_given_transposed_structure(layout, kw):
    g = torch.Generator().manual_seed(draw_seed())
    s = _matrix(layout, kw, g, shape=(12, 15))
    d = torch.randn(12, 3, generator=g)
    want = s.to_dense().double().T @ d.double()
    from sparse_ops import ops_triton

    op = getattr(ops_triton, f"{layout}_spmm_t")
    got = op(*s.structure(), s.values, d, 15, *s.params(), *s.transposed())
    assert rel_err(got, want) < 1e-5
