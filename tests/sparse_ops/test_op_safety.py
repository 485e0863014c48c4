"""Memory safety of the torch ops whatever their tensors hold: the fuzz of the sanitizer run,
in-process.

- integer parameters (r, c, n, m, num_cols, nnz): zero, negative and huge values raise a
  ValueError naming the parameter, before anything is allocated or divided by it;
- inf / NaN in an x column that no row stores never reaches the result, at every SIMD level,
  every layout, N in {1, 2, 16} (the reference's answer: stored entries only);
- edits that torch's version counters do not see (``.data``, numpy) after a first call: the
  next call raises or gives the edited structure's product, never reads out of bounds (run
  under ``make sanitize`` this is what ASan checks);
- one index-dtype rule for every product of a layout.

Seeds are drawn with ``tests.helpers.draw_seed`` (printed with a replay command on failure)
or fixed by hypothesis (``derandomize``).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sparse_ops as so
from sparse_ops import _C
from tests.helpers import draw_seed, rel_err

ops = torch.ops.sparse_ops
ERRORS = (ValueError, TypeError)
LEVELS = list(_C._supported_simd_levels())
HUGE = [2**31, 2**32 + 1, 2**40, 2**62, 2**63 - 1]
NEG = [-1, -(2**31), -(2**63)]


@pytest.fixture(autouse=True)
def _restore_level():
    level = _C.simd_level()
    yield
    _C._set_simd_level(level)


def _matrix(layout: str, g: torch.Generator, shape=(13, 37), **kw) -> so.SparseMatrix:
    w = torch.randn(shape, generator=g)
    if layout == "nm":
        return so.to_sparse(so.prune(w, "nm", n=kw["n"], m=kw["m"]), "nm", **kw)
    return so.to_sparse(so.prune(w, layout, 0.4, **kw), layout, **kw)


# ----------------------------------------------------------------------------- parameters
def _param_calls(g: torch.Generator):
    """(op name, param name, call(value)) for every integer parameter of every product."""
    c = _matrix("csr", g)
    b = _matrix("bsr", g, shape=(12, 35), blocksize=(3, 5))
    n = _matrix("nm", g, n=2, m=4)
    m = _matrix("bitmap", g)
    x37, x35 = torch.randn(37, 2, generator=g), torch.randn(35, 2, generator=g)
    d13, d12 = torch.randn(13, 2, generator=g), torch.randn(12, 2, generator=g)
    bs = (b.crow_indices, b.col_indices)
    bq = so.quantize(b)
    bqa = (*bs, bq.values, bq.scales, x35.T[:1], None, 35)
    return [
        ("bsr_linear_grouped", "r", lambda v: ops.bsr_linear_grouped(*bqa, v, 5)),
        ("bsr_linear_grouped", "c", lambda v: ops.bsr_linear_grouped(*bqa, 3, v)),
        ("csr_spmm_t", "num_cols", lambda v: ops.csr_spmm_t(*c.structure(), c.values, d13, v)),
        ("bsr_spmm", "r", lambda v: ops.bsr_spmm(*bs, b.values, x35, v, 5)),
        ("bsr_spmm", "c", lambda v: ops.bsr_spmm(*bs, b.values, x35, 3, v)),
        ("bsr_linear", "r", lambda v: ops.bsr_linear(*bs, b.values, x35.T, None, v, 5)),
        ("bsr_sddmm", "r", lambda v: ops.bsr_sddmm(*bs, d12, x35, v, 5)),
        ("bsr_sddmm", "c", lambda v: ops.bsr_sddmm(*bs, d12, x35, 3, v)),
        ("bsr_spmm_t", "r", lambda v: ops.bsr_spmm_t(*bs, b.values, d12, 35, v, 5)),
        ("bsr_spmm_t", "c", lambda v: ops.bsr_spmm_t(*bs, b.values, d12, 35, 3, v)),
        ("bsr_spmm_t", "num_cols", lambda v: ops.bsr_spmm_t(*bs, b.values, d12, v, 3, 5)),
        ("nm_spmm", "n", lambda v: ops.nm_spmm(n.metadata, n.values, x37, v, 4)),
        ("nm_spmm", "m", lambda v: ops.nm_spmm(n.metadata, n.values, x37, 2, v)),
        ("nm_linear", "m", lambda v: ops.nm_linear(n.metadata, n.values, x37.T, None, 2, v)),
        ("nm_sddmm", "n", lambda v: ops.nm_sddmm(n.metadata, d13, x37, v, 4)),
        ("nm_sddmm", "m", lambda v: ops.nm_sddmm(n.metadata, d13, x37, 2, v)),
        ("nm_spmm_t", "n", lambda v: ops.nm_spmm_t(n.metadata, n.values, d13, 37, v, 4)),
        ("nm_spmm_t", "num_cols", lambda v: ops.nm_spmm_t(n.metadata, n.values, d13, v, 2, 4)),
        ("bitmap_spmm", "nnz", lambda v: ops.bitmap_spmm(*m.structure(), m.values, x37, v)),
        ("bitmap_linear", "nnz",
         lambda v: ops.bitmap_linear(*m.structure(), m.values, x37.T, None, v)),
        ("bitmap_sddmm", "nnz", lambda v: ops.bitmap_sddmm(*m.structure(), d13, x37, v)),
        ("bitmap_spmm_t", "nnz",
         lambda v: ops.bitmap_spmm_t(*m.structure(), m.values, d13, 37, v)),
        ("bitmap_spmm_t", "num_cols",
         lambda v: ops.bitmap_spmm_t(*m.structure(), m.values, d13, v, m.nnz)),
    ]


def test_every_integer_parameter_is_checked_first():
    """Zero (where a size must be positive), negative and huge values: a ValueError naming
    the parameter, raised before any allocation (a huge one would fail to allocate instead)."""
    g = torch.Generator().manual_seed(draw_seed())
    for op, name, call in _param_calls(g):
        bad = NEG + HUGE + ([0] if name in ("r", "c", "n", "m") else [])
        if name == "m":
            bad += [1, 17]
        if name == "n":
            bad += [4, 5]  # n < m = 4
        for v in bad:
            with pytest.raises(ValueError, match=rf"\b{name}\b") as e:
                call(v)
            assert "allocate" not in str(e.value) and "overflow" not in str(e.value), (op, v)


def test_zero_width_block_is_an_error_not_a_crash():
    """c = 0 used to reach ``num_cols % c`` (SIGFPE)."""
    with pytest.raises(ValueError, match=r"\bc\b"):
        ops.bsr_spmm_t(torch.zeros(1, dtype=torch.int32), torch.zeros(0, dtype=torch.int32),
                       torch.zeros(0, 1, 0), torch.zeros(0, 2), 0, 1, 0)


def test_block_rows_past_int32_are_an_error():
    crow = torch.zeros(5, dtype=torch.int32)
    col = torch.zeros(0, dtype=torch.int32)
    with pytest.raises(ValueError, match=r"\br\b"):
        ops.bsr_spmm(crow, col, torch.zeros(0, 2**30, 1), torch.zeros(3, 1), 2**30, 1)


# ----------------------------------------------------------------------------- unstored inf
def _unstored_case(layout: str, g: torch.Generator, shape=(19, 70)):
    """A matrix that stores nothing in some columns, and those columns (a bool (K,) mask)."""
    M, K = shape
    w = torch.randn(M, K, generator=g)
    if layout == "nm":  # 2:4 keeping the first two of every group: columns 2, 3 mod 4 empty
        keep = (torch.arange(K) % 4) < 2
        s = so.to_sparse(w * keep, "nm", n=2, m=4)
    elif layout == "bsr":  # (1, 5) blocks; block columns 1, 4, 7, ... hold no block
        keep = (torch.arange(K) // 5) % 3 != 1
        s = so.to_sparse(w * keep, "bsr", blocksize=(1, 5))
    else:
        keep = torch.rand(K, generator=g) < 0.6
        keep[K - 1] = False  # the ragged last word of a bitmap row too
        s = so.to_sparse(w * keep * (torch.rand(M, K, generator=g) < 0.7), layout)
    stored = s.to_dense() != 0
    return s, ~stored.any(0)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("layout", ["csr", "bitmap", "bsr", "nm"])
@pytest.mark.parametrize("n", [1, 2, 16])
@pytest.mark.parametrize("values", ["float32", "int8", "bfloat16"])
def test_inf_nan_in_unstored_columns_never_reach_the_result(layout, n, level, values):
    """One answer at every level: the reference multiplies stored entries only (int8 and
    bitmap bfloat16 values too: their N = 1 shuffle kernels multiply every column, so they
    must step aside)."""
    _C._set_simd_level(level)
    g = torch.Generator().manual_seed(draw_seed())
    s, empty = _unstored_case(layout, g)
    if values == "int8":
        s = so.quantize(s)
    x = torch.randn(s.shape[1], n, generator=g)
    tol = 1e-5
    if values == "bfloat16":
        s, x, tol = s.to(torch.bfloat16), x.bfloat16(), 1e-2
    cols = empty.nonzero().flatten()
    assert len(cols) >= 3
    x[cols[0::3]] = float("inf")
    x[cols[1::3]] = float("-inf")
    x[cols[2::3]] = float("nan")
    want = s.to_dense().double() @ torch.where(empty[:, None], 0.0, x.double()).double()
    got = so.matmul(s, x)
    assert torch.isfinite(got).all(), (layout, level, n)
    assert rel_err(got, want) < tol
    y = so.linear(x.T.contiguous(), s)  # batch n: the linear path (bitmap_linear at batch 1)
    assert torch.isfinite(y).all() and rel_err(y, want.T) < tol


# ----------------------------------------------------------------------------- uncounted edits
LAYOUTS = [("csr", {}), ("bitmap", {}), ("bsr", {"blocksize": (3, 5)}),
           ("nm", {"n": 2, "m": 4}), ("nm", {"n": 1, "m": 3}), ("nm", {"n": 2, "m": 8})]
SHAPES = {"bsr": (12, 35)}


def _rebuilt(s: so.SparseMatrix, parts: dict[str, torch.Tensor]) -> so.SparseMatrix | None:
    """The matrix the edited tensors describe, validated by the Python format; None if bad."""
    try:
        return type(s).from_parts(parts, s.shape, s.params(), validate=True)
    except ERRORS:
        return None


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(LAYOUTS))), st.integers(0, 2**31 - 1),
       st.sampled_from(["data", "numpy"]), st.integers(0, 10**6),
       st.sampled_from(["big", "neg", "off_by_one", "random", "all_ones"]),
       st.sampled_from(LEVELS), st.sampled_from([1, 3, 16]))
def test_edits_torch_does_not_count_are_caught(li, seed, how, where, what, level, n):
    """A first call on a valid structure, then an edit of a structure tensor that does not
    bump its version: the next products raise, or answer for the edited structure."""
    _C._set_simd_level(level)
    layout, kw = LAYOUTS[li]
    g = torch.Generator().manual_seed(seed)
    s = _matrix(layout, g, shape=SHAPES.get(layout, (13, 37)), **kw)
    M, K = s.shape
    x = torch.randn(K, n, generator=g)
    d = torch.randn(M, n, generator=g)
    spmm = getattr(ops, f"{layout}_spmm")
    spmm_t = getattr(ops, f"{layout}_spmm_t")
    st_ = s.structure()
    spmm(*st_, s.values, x, *s.params())
    spmm_t(*st_, s.values, d, K, *s.params())  # caches the transpose (N > 1)
    # the int8 one-token op (so.linear's decode path) on the same structure tensors
    q = so.quantize(s)
    one = getattr(ops, f"{layout}_linear_grouped")
    x1 = torch.randn(1, K, generator=g)
    unit = kw.get("m", 1)  # one group a row: K rounded up to whole N:M groups
    gsize = max(-(-K // unit) * unit, unit)
    one(*q.structure(), q.values, q.scales, x1, None, gsize, *q.params())
    t = [u for u in st_ if u.numel()][where % sum(1 for u in st_ if u.numel())]
    version = t._version
    flat = t.data.view(-1) if how == "data" else torch.from_numpy(t.numpy().reshape(-1))
    i = where % flat.numel()
    if t.dtype == torch.uint8:
        flat[i] = {"big": 255, "neg": 128, "off_by_one": int(flat[i]) ^ 1,
                   "random": where % 256, "all_ones": 255}[what]
        if what == "all_ones":
            flat.fill_(255)
    else:
        info = torch.iinfo(t.dtype)
        v = {"big": info.max, "neg": -1, "off_by_one": int(flat[i]) + 1,
             "random": where % (2 * K + 3) - 1, "all_ones": 10**6}[what]
        flat[i] = max(info.min, min(info.max, v))
    assert t._version == version  # an edit torch did not count
    edited = _rebuilt(s, {name: getattr(s, name) for name in s.tensor_names})
    try:
        y = spmm(*st_, s.values, x, *s.params())
    except ERRORS:
        assert edited is None, f"rejected a valid edited structure ({layout}, {kw})"
    else:
        assert edited is not None, f"accepted an invalid structure ({layout}, {kw})"
        assert rel_err(y, edited.to_dense().double() @ x.double()) < 1e-5
    try:
        y1 = one(*q.structure(), q.values, q.scales, x1, None, gsize, *q.params())
    except ERRORS:
        assert edited is None, f"int8: rejected a valid edited structure ({layout}, {kw})"
    else:
        assert edited is not None, f"int8: accepted an invalid structure ({layout}, {kw})"
        wq = type(s).from_parts({**{n: getattr(s, n) for n in s.tensor_names},
                                 "values": q.values.double()}, s.shape, s.params())
        want = (x1.double() @ wq.to_dense().T) * q.scales.double().T
        assert rel_err(y1, want) < 1e-5
    try:
        z = spmm_t(*st_, s.values, d, K, *s.params())
    except ERRORS:
        pass  # a transposed structure rebuilt from the edit fails its checks
    else:
        # The transpose of S^T @ d (N > 1) is cached on the version counters: an uncounted
        # edit may be answered for the structure as it was, never out of bounds.
        assert torch.isfinite(z).all()


def test_numpy_edit_of_csr_row_pointer_after_a_call():
    crow = torch.tensor([0, 1, 2], dtype=torch.int32)
    col = torch.tensor([0, 1], dtype=torch.int32)
    vals, x = torch.ones(2), torch.ones(2, 4)
    ops.csr_spmm(crow, col, vals, x)
    crow.numpy()[2] = 10**8
    with pytest.raises(ValueError, match="crow_indices"):
        ops.csr_spmm(crow, col, vals, x)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("n", [1, 2, 16])
def test_bitmap_bits_set_through_data_are_caught(level, n):
    _C._set_simd_level(level)
    w = torch.zeros(2, 64)
    w[0, 0], w[1, 3] = 1, 2
    s = so.to_sparse(w, "bitmap")
    x = torch.ones(64, n)
    so.matmul(s, x)
    s.bitmap.data.fill_(255)
    with pytest.raises(ValueError, match="row_offsets|bitmap"):
        so.matmul(s, x)
    with pytest.raises(ValueError, match="row_offsets|bitmap"):
        ops.bitmap_spmm_t(*s.structure(), s.values, torch.ones(2, n), 64, s.nnz)
    with pytest.raises(ValueError, match="row_offsets|bitmap"):
        ops.bitmap_sddmm(*s.structure(), torch.ones(2, n), x, s.nnz)


# ----------------------------------------------------------------------------- index dtypes
INDEX_DTYPES = [torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8]


def _products(layout: str, s: so.SparseMatrix, col: torch.Tensor):
    """(name, op, args) of every product of ``layout`` on ``s`` with ``col`` as its columns."""
    crow, v, p = s.crow_indices, s.values, s.params()
    M, K = s.shape
    op = lambda name: getattr(ops, f"{layout}_{name}")  # noqa: E731
    return [
        ("spmm N=1", op("spmm"), (crow, col, v, torch.randn(K, 1), *p)),
        ("spmm N=3", op("spmm"), (crow, col, v, torch.randn(K, 3), *p)),
        ("spmm_t N=1", op("spmm_t"), (crow, col, v, torch.randn(M, 1), K, *p)),
        ("spmm_t N=3", op("spmm_t"), (crow, col, v, torch.randn(M, 3), K, *p)),
        ("sddmm", op("sddmm"), (crow, col, torch.randn(M, 3), torch.randn(K, 3), *p)),
        ("linear", op("linear"), (crow, col, v, torch.randn(2, K), None, *p)),
    ]


@pytest.mark.parametrize("layout,kw", [("csr", {}), ("bsr", {"blocksize": (3, 5)})])
def test_one_index_dtype_rule_per_layout(layout, kw):
    """Every product of a layout accepts the same column index dtypes (N = 1 and N > 1)."""
    g = torch.Generator().manual_seed(draw_seed())
    s = _matrix(layout, g, shape=(12, 35), **kw)
    for dt in INDEX_DTYPES:
        verdicts = {}
        for name, op, args in _products(layout, s, s.col_indices.to(dt)):
            try:
                op(*args)
                verdicts[name] = "ok"
            except TypeError:
                verdicts[name] = "TypeError"
        assert len(set(verdicts.values())) == 1, (layout, dt, verdicts)
