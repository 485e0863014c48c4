"""The one-token int8 linear on the CPU, on any SIMD level: ``<layout>_linear_grouped`` (x
(..., K) -> (..., M), the scales and the bias applied in C++; N:M and bitmap per-row or group
scales, CSR and BSR one scale a row; opcheck) and ``so.linear``'s decode fast path (the op
bound on the matrix by its first one-token call; dropped when the matrix's attributes change;
x still checked by the op)."""

from __future__ import annotations

import pytest
import torch

import sparse_ops as so
from sparse_ops import _C
from tests.helpers import draw_seed, random_sparse

pytestmark = pytest.mark.usefixtures("restore_simd_and_panel")

# the integer bitmap SpMV on and off where the CPU has it, else the float kernels only
VNNI = (True, False) if _C._bitmap_vnni() else (False,)

LAYOUTS = ["bitmap", "nm", "csr", "bsr"]
# (M, K) of odd sizes; BSR's blocks (3, 7) tile them
SHAPE = (39, 700)
KW = {"nm": {"n": 2, "m": 4}, "bsr": {"blocksize": (3, 7)}}
OPS = {name: getattr(torch.ops.sparse_ops, f"{name}_linear_grouped") for name in LAYOUTS}


def group_sizes(layout):
    """The scale groupings each op takes: CSR and BSR one scale a row only."""
    return (None, 64) if layout in ("bitmap", "nm") else (None,)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_one_token_per_row_scales_through_the_grouped_op(layout):
    """so.linear at one token with per-row scales calls the grouped product with one group a
    row (scales applied in C++ after the per-row product): float64 on the dequantized
    weight, with a bias, with the VNNI kernel on and off, K not a multiple of 64."""
    seed = draw_seed()
    g = torch.Generator().manual_seed(seed)
    q = so.quantize(random_sparse(layout, SHAPE, KW.get(layout, {}), density=0.5,
                                  seed=seed)[0])
    bias = torch.randn(SHAPE[0], generator=g).bfloat16()
    x = torch.randn(1, 700, generator=g).bfloat16()
    want = x.double() @ q.to_dense().double().T + bias.double()
    for on in VNNI:
        _C._set_bitmap_vnni(on)
        y = so.linear(x, q, bias)
        assert y.dtype == torch.bfloat16 and y.shape == (1, SHAPE[0])
        assert ((y.double() - want).abs() <= 2.0**-7 * want.abs() + 1e-2).all(), (on, seed)


@pytest.mark.parametrize("group_size", [None, 64])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_one_token_fast_path_follows_the_weight_and_checks_x(layout, group_size):
    """so.linear binds the one-token op on its first call; later calls take it. Replacing
    the weight's values or scales drops it (the new ones are used), a copy or a pickle
    rebinds, and bad activations still get the slow path's errors."""
    import copy
    import pickle

    seed = draw_seed()
    g = torch.Generator().manual_seed(seed)
    q = so.quantize(random_sparse(layout, SHAPE, KW.get(layout, {}), density=0.5,
                                  seed=seed)[0], group_size=group_size)
    x = torch.randn(1, 700, generator=g).bfloat16()
    # CSR / BSR with group scales dequantize per call: no op to bind
    binds = group_size in group_sizes(layout)

    def want(w):
        return x.double() @ w.to_dense().double().T

    def close(y, w):  # bf16 tolerance on the size of the terms (cancellation: |x| @ |W|^T)
        mag = x.double().abs() @ w.to_dense().double().abs().T
        return bool(((y.double() - want(w)).abs() <= 2.0**-7 * mag).all())

    assert close(so.linear(x, q), q) and ("_one_token" in q.__dict__) == binds, seed
    assert close(so.linear(x, q), q), seed  # the bound op
    q.values = -q.values  # a new tensor: the bound op is dropped, the new values used
    assert "_one_token" not in q.__dict__
    assert close(so.linear(x, q), q), seed
    q.scales = q.scales * 2
    assert close(so.linear(x, q), q), seed
    x3 = x.reshape(1, 1, 700)  # a decoder's (batch, sequence, hidden)
    assert torch.equal(so.linear(x3, q), so.linear(x, q).reshape(1, 1, SHAPE[0])), seed
    assert so.linear(x3, q).shape == (1, 1, SHAPE[0])
    for c in (copy.deepcopy(q), pickle.loads(pickle.dumps(q))):
        assert "_one_token" not in c.__dict__
        assert close(so.linear(x, c), c), seed
    so.linear(x, q)
    with pytest.raises(TypeError, match="x"):
        so.linear(x.to(torch.int32), q)
    with pytest.raises(ValueError, match="x"):
        so.linear(torch.randn(1, 699).bfloat16(), q)
    with pytest.raises(RuntimeError, match="inference only"):
        so.linear(x.float().requires_grad_(), q)
    with pytest.raises(TypeError, match="x"):
        so.linear(x.to_sparse(), q)
    with pytest.raises(ValueError, match="x"):
        so.linear(x.to("meta"), q)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_one_token_fast_path_under_compile():
    """An eager call binds the op; torch.compile(fullgraph) of a module calling so.linear
    then traces the bound call (the fake kernel) and agrees with eager."""
    seed = draw_seed()
    q = so.quantize(random_sparse("bitmap", (37, 700), {}, density=0.5, seed=seed)[0])
    x = torch.randn(1, 700).bfloat16()
    eager = so.linear(x, q)
    assert "_one_token" in q.__dict__

    def f(t):
        return so.linear(t, q) * 2

    got = torch.compile(f, fullgraph=True)(x)
    assert torch.equal(got, eager * 2), seed


@pytest.mark.parametrize("layout", LAYOUTS)
def test_linear_grouped_ops_opcheck_shapes_and_bias(layout):
    """<layout>_linear_grouped: x (..., K) -> (..., M), the bias added in float32, group
    scales (N:M, bitmap) or one group a row; opcheck (fake kernel, schema, autograd
    registration) on 1-, 2- and 3-D x; float64 reference; the bias's errors."""
    seed = draw_seed()
    g = torch.Generator().manual_seed(seed)
    op = OPS[layout]
    M = SHAPE[0]
    for group_size in group_sizes(layout):
        q = so.quantize(random_sparse(layout, SHAPE, KW.get(layout, {}), density=0.5,
                                      seed=seed)[0], group_size=group_size)
        gsize = group_size or 700
        args = (*q.structure(), q.values, q.scales.float())
        w = q.to_dense().double()
        for shape in ((700,), (1, 700), (3, 700), (2, 1, 700)):
            for dtype in (torch.float32, torch.bfloat16):
                x = torch.randn(shape, generator=g).to(dtype)
                bias = torch.randn(M, generator=g).to(dtype)
                y = op(*args, x, bias, gsize, *q.params())
                assert y.shape == (*shape[:-1], M) and y.dtype == dtype, (shape, seed)
                want = x.double() @ w.T + bias.double()
                tol = 1e-5 if dtype == torch.float32 else 2.0**-7
                assert ((y.double() - want).abs() <= tol * (x.double().abs() @ w.abs().T
                                                           + bias.double().abs())).all(), seed
                torch.library.opcheck(op.default, (*args, x, bias, gsize, *q.params()))
        x = torch.randn(1, 700)
        with pytest.raises(TypeError, match="bias"):
            op(*args, x, torch.zeros(M, dtype=torch.bfloat16), gsize, *q.params())
        with pytest.raises(ValueError, match="bias"):
            op(*args, x, torch.zeros(M - 1), gsize, *q.params())
    if layout in ("csr", "bsr"):  # one scale a row only: a group narrower than K is refused
        q = so.quantize(random_sparse(layout, SHAPE, KW.get(layout, {}), density=0.5,
                                      seed=seed)[0], group_size=64)
        with pytest.raises(ValueError, match="group_size"):
            op(*q.structure(), q.values, q.scales.float(), torch.randn(1, 700), None, 64,
               *q.params())
