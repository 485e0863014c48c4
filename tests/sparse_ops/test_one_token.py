"""``so.linear``'s one-token fast path for float weights on the CPU: the first call of a
decode step with gradients off binds the layout's C++ ``*_linear_call`` op on the matrix;
later ``(1, K)`` / ``(1, 1, K)`` tokens call it with nothing else in Python. The answer is
the slow path's (same kernel), x is still checked, gradients never take the binding, and any
assignment to the matrix drops it. (The int8 binding: ``test_linear_grouped.py``.)"""

from __future__ import annotations

import copy

import pytest
import torch

import sparse_ops as so
from tests.helpers import draw_seed, random_sparse, rel_err

LAYOUTS = [("bitmap", {}), ("nm", {"n": 2, "m": 4}), ("csr", {}), ("bsr", {"blocksize": (3, 7)})]
SHAPE = (39, 700)  # odd sizes; BSR's (3, 7) blocks tile them


def _weight(layout, kw, dtype, seed):
    s, dense = random_sparse(layout, SHAPE, kw, dtype=dtype, density=0.5, seed=seed)
    return s, dense


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout,kw", LAYOUTS)
def test_bound_call_matches_the_slow_path_and_float64(layout, kw, dtype):
    """Bound by the first no-grad call; then (1, K) and (1, 1, K) tokens give the slow
    path's answer bit for bit (backend="cpp" skips the binding: same kernel) and the float64
    product within 1e-5 (fp32) / bf16 tolerance."""
    seed = draw_seed()
    g = torch.Generator().manual_seed(seed)
    s, dense = _weight(layout, kw, dtype, seed)
    x = torch.randn(1, SHAPE[1], generator=g).to(dtype)
    with torch.no_grad():
        first = so.linear(x, s)
        one = s.__dict__.get("_one_token")
        assert one is not None and one.flat, seed
        y = so.linear(x, s)
        y3 = so.linear(x.reshape(1, 1, -1), s)
        slow = so.linear(x, s, backend="cpp")
    assert y.shape == (1, SHAPE[0]) and y3.shape == (1, 1, SHAPE[0]) and y.dtype == dtype
    assert torch.equal(y, slow) and torch.equal(first, slow), seed
    assert torch.equal(y3.reshape(1, -1), slow), seed
    want = x.double() @ dense.T
    assert rel_err(y, want) < (1e-5 if dtype == torch.float32 else 2.0**-7), seed


def test_binding_follows_the_matrix():
    """In-place changes of the bound tensors are seen (the op reads them each call); an
    assigned tensor drops the binding; copies and pickles are bound again by their own
    first call."""
    import pickle

    seed = draw_seed()
    g = torch.Generator().manual_seed(seed)
    s, dense = _weight("csr", {}, torch.float32, seed)
    x = torch.randn(1, SHAPE[1], generator=g)
    with torch.no_grad():
        so.linear(x, s)
        assert "_one_token" in s.__dict__
        s.values.mul_(2)  # in place: the bound op reads the new values
        assert rel_err(so.linear(x, s), x.double() @ (2 * dense).T) < 1e-5, seed
        s.values = s.values * 3  # assigned: the binding goes, the new tensor is used
        assert "_one_token" not in s.__dict__
        assert rel_err(so.linear(x, s), x.double() @ (6 * dense).T) < 1e-5, seed
        for c in (copy.deepcopy(s), pickle.loads(pickle.dumps(s))):
            assert "_one_token" not in c.__dict__
            assert rel_err(so.linear(x, c), x.double() @ (6 * dense).T) < 1e-5, seed


def test_gradients_never_take_the_binding():
    """A binding made without gradients is not used with them: the backward is the slow
    path's (values and x gradients against float64)."""
    seed = draw_seed()
    g = torch.Generator().manual_seed(seed)
    s, dense = _weight("bitmap", {}, torch.float32, seed)
    x = torch.randn(1, SHAPE[1], generator=g)
    with torch.no_grad():
        so.linear(x, s)
    assert "_one_token" in s.__dict__
    s.values.requires_grad_(True)
    xr = x.clone().requires_grad_(True)
    y = so.linear(xr, s)
    gy = torch.randn(y.shape, generator=g)
    y.backward(gy)
    assert rel_err(xr.grad, gy.double() @ dense) < 1e-5, seed
    mask = dense != 0
    gw = (gy.double().T @ x.double())[mask]  # row-major stored order: bitmap's values order
    assert rel_err(s.values.grad, gw) < 1e-5, seed


def test_bad_tokens_get_the_slow_paths_errors():
    """After a binding, x of another dtype, width, layout or device gets the same error as
    without one."""
    seed = draw_seed()
    s, _ = _weight("nm", {"n": 2, "m": 4}, torch.bfloat16, seed)
    x = torch.randn(1, SHAPE[1]).bfloat16()
    with torch.no_grad():
        so.linear(x, s)
        assert "_one_token" in s.__dict__
        with pytest.raises(TypeError, match="x"):
            so.linear(x.float(), s)
        with pytest.raises(TypeError, match="x"):
            so.linear(x.reshape(1, 1, -1).float(), s)
        with pytest.raises(ValueError, match="x"):
            so.linear(torch.randn(1, SHAPE[1] - 1).bfloat16(), s)
        with pytest.raises(TypeError, match="x"):
            so.linear(x.to_sparse(), s)
        with pytest.raises(ValueError, match="x"):
            so.linear(x.to("meta"), s)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_bound_call_under_compile():
    """An eager no-grad call binds the op; torch.compile(fullgraph) of a function calling
    so.linear then traces the bound call and agrees with eager."""
    seed = draw_seed()
    s, _ = _weight("bsr", {"blocksize": (3, 7)}, torch.float32, seed)
    x = torch.randn(1, 1, SHAPE[1])
    with torch.no_grad():
        eager = so.linear(x, s)
        assert "_one_token" in s.__dict__

        def f(t):
            return so.linear(t, s) * 2

        got = torch.compile(f, fullgraph=True)(x)
    assert torch.equal(got, eager * 2), seed


def test_sparse_linear_decode_step_takes_the_binding():
    """A SparseLinear in no-grad decode binds on its kept matrix and answers as the dense
    layer of its pruned weight."""
    seed = draw_seed()
    torch.manual_seed(seed)
    lin = torch.nn.Linear(SHAPE[1], SHAPE[0])
    with torch.no_grad():
        sl = so.SparseLinear.from_dense(lin, "bitmap", density=0.5)
        lin.weight.copy_(so.prune(lin.weight, "bitmap", 0.5))
        x = torch.randn(1, 1, SHAPE[1])
        a = sl(x)  # with a bias: the slow path (the bias is added by the op)
        assert rel_err(a, lin(x).double()) < 1e-5, seed
        sl.bias = None
        b1, b2 = sl(x), sl(x)
        assert "_one_token" in sl.sparse_weight().__dict__
        assert torch.equal(b1, b2) and rel_err(b2, (lin(x) - lin.bias).double()) < 1e-5, seed
