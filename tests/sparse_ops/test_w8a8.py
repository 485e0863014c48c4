"""W8A8: int8 weights times activations quantized per token (``sparse_ops/w8a8.py``).

The integer products are compared with a float64 product of the dequantized weight and the
dequantized activations (``xq * scale``): given the quantized operands the result is exact up
to float32 rounding, so relative error < 1e-5 at every SIMD level, odd shapes, per row and per
group. The activation quantization is checked against its definition (half a step per entry).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sparse_ops as so
from sparse_ops import _C, w8a8
from tests.helpers import draw_seed, random_sparse, rel_err

LEVELS = list(_C._supported_simd_levels())


def _engines() -> list[tuple[str, str]]:
    """(SIMD level, W8A8 dot engine) for every engine of every level this CPU runs: 'madd'
    and 'vnni-emulated' on AVX2 CPUs, 'vnni' where the CPU has vpdpbusd, 'plain' (scalar)."""
    level, pairs = _C.simd_level(), []
    for lv in LEVELS:
        _C._set_simd_level(lv)
        pairs += [(lv, e) for e in _C._int8_dots()]
    _C._set_simd_level(level)
    return pairs


ENGINES = _engines()
ENGINE_IDS = [f"{lv}-{e}" for lv, e in ENGINES]


def _use(level: str, engine: str) -> None:
    _C._set_simd_level(level)
    assert _C._set_int8_dot(engine) == engine
# 2:4 and 1:4 take the byte-table expansion on the vector levels, the others the slot loop
NM = [{"n": 2, "m": 4}, {"n": 1, "m": 4}, {"n": 1, "m": 3}, {"n": 3, "m": 4}, {"n": 2, "m": 8},
      {"n": 1, "m": 2}]

pytestmark = pytest.mark.usefixtures("restore_simd_and_panel")


@pytest.fixture(autouse=True)
def _auto_w8a8():
    yield
    w8a8.set_w8a8_mode("auto")


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(draw_seed())


def _reference(q: so.SparseMatrix, xq: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """(M, B) float64: the dequantized weight times the dequantized activations."""
    return q.to_dense().double() @ (xq.double() * xs.double()[:, None]).t()


def test_quantize_activations_definition():
    g = _gen()
    x = torch.randn(9, 301, generator=g) * torch.logspace(-3, 3, 9)[:, None]
    x[4] = 0
    xq, xs = so.quantize_activations(x)
    assert xq.dtype == torch.int8 and xs.dtype == torch.float32
    assert xq.shape == x.shape and xs.shape == (9,)
    assert int(xq.min()) >= -127 and int(xq.max()) <= 127
    assert float(xs[4]) == 1.0 and not xq[4].any()
    nz = [i for i in range(9) if i != 4]
    assert (xq[nz].abs().amax(dim=1) == 127).all()  # the largest entry of a token maps to 127
    err = (xq.double() * xs.double()[:, None] - x.double()).abs()
    assert (err <= xs.double()[:, None] / 2 * (1 + 1e-6)).all()
    # bfloat16 in: the same as its float32 value
    xb = x.bfloat16()
    qb, sb = so.quantize_activations(xb)
    q32, s32 = so.quantize_activations(xb.float())
    assert torch.equal(qb, q32) and torch.equal(sb, s32)
    bad = x.clone()
    bad[2, 7] = float("inf")
    assert not torch.isfinite(so.quantize_activations(bad)[1][2])
    with pytest.raises(TypeError, match="x: expected float32"):
        so.quantize_activations(x.double())
    with pytest.raises(ValueError, match="x: expected a 2-D"):
        so.quantize_activations(x[0])


@pytest.mark.parametrize("level,engine", ENGINES, ids=ENGINE_IDS)
@pytest.mark.parametrize("group_size", [None, 32, 12])
@pytest.mark.parametrize("layout,kw", [("bitmap", {}), *(("nm", k) for k in NM),
                                       ("bsr", {"blocksize": (7, 12)}),
                                       ("bsr", {"blocksize": (16, 20)})],
                         ids=["bitmap", *(f"{k['n']}:{k['m']}" for k in NM), "bsr7x12",
                              "bsr16x20"])
def test_w8a8_op_against_float64(level, engine, group_size, layout, kw):
    _use(level, engine)
    shape = {(7, 12): (98, 708), (16, 20): (96, 700)}.get(kw.get("blocksize"), (101, 701))
    s, _ = random_sparse(layout, shape, kw, density=0.5)
    q = so.quantize(s, group_size=group_size)
    g = _gen()
    for n in (1, 3, 17, 45):
        x = torch.randn(n, shape[1], generator=g)
        xq, xs = so.quantize_activations(x)
        y = w8a8.spmm_w8a8(q, xq, xs)
        assert y.shape == (shape[0], n) and y.dtype == torch.float32
        assert _C._last_path() == f"{layout}.w8a8"
        assert rel_err(y, _reference(q, xq, xs)) < 1e-5, (level, engine, n)


@pytest.mark.parametrize("level,engine", ENGINES, ids=ENGINE_IDS)
def test_w8a8_large_k_and_runs_across_chunks(level, engine):
    """K spanning several panel chunks (256 / 384 columns) and group runs inside them."""
    _use(level, engine)
    for layout, kw, gs, shape in [
            ("bitmap", {}, 64, (53, 1283)), ("nm", {"n": 2, "m": 4}, None, (53, 1283)),
            ("nm", {"n": 1, "m": 3}, 96, (53, 1283)),
            # block rows taller than the 48-row panel, groups across blocks, per-row runs
            ("bsr", {"blocksize": (50, 36)}, 24, (100, 1296)),
            ("bsr", {"blocksize": (3, 4)}, None, (51, 1284)),
            # one scale a row: runs of 120 blocks (960 columns) summed before each flush
            ("bsr", {"blocksize": (2, 8)}, None, (20, 4000)),
            # block heights a multiple of 16 (the AMX engine's tiles read the blocks): one,
            # three and four (3 + 1) row tiles, tile steps of 4 (C = 12), 32 and 64 columns
            ("bsr", {"blocksize": (16, 12)}, None, (48, 1284)),
            ("bsr", {"blocksize": (48, 32)}, 64, (96, 1280)),
            ("bsr", {"blocksize": (64, 128)}, None, (128, 1280)),
            ("bsr", {"blocksize": (32, 96)}, 48, (64, 1344))]:
        s, _ = random_sparse(layout, shape, kw, density=0.5)
        q = so.quantize(s, group_size=gs)
        x = torch.randn(29, shape[1], generator=_gen()) * 3
        xq, xs = so.quantize_activations(x)
        assert rel_err(w8a8.spmm_w8a8(q, xq, xs), _reference(q, xq, xs)) < 1e-5, layout


@pytest.mark.parametrize("level,engine", ENGINES, ids=ENGINE_IDS)
@pytest.mark.parametrize("layout,kw", [("bitmap", {}), ("nm", {"n": 2, "m": 4}),
                                       ("nm", {"n": 1, "m": 3}), ("bsr", {"blocksize": (5, 40)})],
                         ids=["bitmap", "2:4", "1:3", "bsr5x40"])
def test_w8a8_extreme_magnitudes_whole_chunks(level, engine, layout, kw):
    """Every weight -128, -127 or 127 and every activation +-127 over runs of a whole panel
    chunk (per-row scales): the largest sums the accumulators and their float conversion see
    (madd: |w| = 128 pairs; vnni: (x + 128) * w, then minus 128 * the weight sum). With unit
    scales every output is an integer below 2^24: the product must be exact, so an error of
    one in any run's sum fails."""
    _use(level, engine)
    g = _gen()
    k = 1000  # 1000 * 128 * 127 < 2^24: the float sums of the runs stay exact
    s, _ = random_sparse(layout, (30 if layout == "bsr" else 31, k), kw, density=0.95)
    q = so.quantize(s)
    pick = torch.tensor([-128, -127, 127], dtype=torch.int8)
    q = q.with_values(pick[torch.randint(0, 3, q.values.shape, generator=g)])
    q.scales = torch.ones_like(q.scales)
    ones = torch.ones(13)
    for sign in (1, -1, 0):  # all +127, all -127, random signs
        if sign:
            xq = torch.full((13, k), 127 * sign, dtype=torch.int8)
        else:
            xq = (torch.randint(0, 2, (13, k), generator=g) * 254 - 127).to(torch.int8)
        y = w8a8.spmm_w8a8(q, xq, ones)
        want = _reference(q, xq, ones)
        assert torch.equal(y.double(), want), (level, engine, sign, (y.double() - want).abs().max())
        xs = torch.rand(13, generator=g) + 0.5
        assert rel_err(w8a8.spmm_w8a8(q, xq, xs), _reference(q, xq, xs)) < 1e-5


def _nm_with_duplicates(values: list[int], meta_byte: int, rows: int, k: int):
    """An N:M (2:4) int8 matrix whose every group's two slots name the columns that
    ``meta_byte`` (two groups a byte) says, with the given slot values."""
    groups = k // 4
    meta = torch.full((rows, groups * 2 * 2 // 8), meta_byte, dtype=torch.uint8)
    vals = torch.tensor(values, dtype=torch.int8).repeat(rows, groups * 2 // len(values))
    return meta, vals


@pytest.mark.parametrize("level,engine", ENGINES, ids=ENGINE_IDS)
@pytest.mark.parametrize("values", [[100, 100, -90, 3], [-64, -64, 50, 60], [127, -128, 5, 5]])
def test_w8a8_nm_slots_naming_one_column_add_up(level, engine, values):
    """Two slots of a group naming one column add up; a sum outside int8 (200, -128 - 64...)
    takes the exact int16 path for its chunk."""
    from tests.csrc.test_csrc_kernels import unpack_positions

    _use(level, engine)
    rows, k = 23, 520  # 130 groups: two panel chunks (256 columns) and a part
    meta, vals = _nm_with_duplicates(values, 0b01_01_00_00, rows, k)  # group 0: 0,0; 1: 1,1
    scales = torch.rand(rows, 1) + 0.5
    x = torch.randn(7, k, generator=_gen())
    xq, xs = so.quantize_activations(x)
    y = torch.ops.sparse_ops.nm_spmm_w8a8(meta, vals, scales, xq, xs, 0, 2, 4)
    pos = unpack_positions(meta.numpy(), vals.shape[1], 4)
    cols = (np.arange(vals.shape[1]) // 2) * 4 + pos
    dense = np.zeros((rows, k))
    for i in range(rows):
        np.add.at(dense[i], cols[i], vals[i].numpy().astype(np.float64))
    ref = (torch.from_numpy(dense) * scales.double()) @ (xq.double() * xs.double()[:, None]).t()
    assert rel_err(y, ref) < 1e-5


def test_w8a8_op_errors_name_the_argument():
    s, _ = random_sparse("bitmap", (21, 40), {}, density=0.5)
    q = so.quantize(s)
    x = torch.randn(3, 40)
    xq, xs = so.quantize_activations(x)
    op = torch.ops.sparse_ops.bitmap_spmm_w8a8
    st = q.structure()
    with pytest.raises(ValueError, match="xq: holds -128"):
        bad = xq.clone()
        bad[1, 39] = -128
        op(*st, q.values, q.scales, bad, xs, 0, *q.params())
    with pytest.raises(TypeError, match="values: W8A8 takes int8"):
        op(*st, q.values.float(), q.scales, xq, xs, 0, *q.params())
    with pytest.raises(TypeError, match="xq: expected the int8"):
        op(*st, q.values, q.scales, x, xs, 0, *q.params())
    with pytest.raises(ValueError, match="xq: expected a 2-D"):
        op(*st, q.values, q.scales, xq[0], xs, 0, *q.params())
    with pytest.raises(TypeError, match="x_scales: expected a float32"):
        op(*st, q.values, q.scales, xq, xs.double(), 0, *q.params())
    with pytest.raises(ValueError, match=r"x_scales: expected shape \(3,\)"):
        op(*st, q.values, q.scales, xq, xs[:2], 0, *q.params())
    with pytest.raises(ValueError, match="group_size: W8A8 takes 0"):
        op(*st, q.values, q.scales, xq, xs, 6, *q.params())
    with pytest.raises(ValueError, match=r"scales: expected shape \(21, 5\)"):
        op(*st, q.values, q.scales, xq, xs, 8, *q.params())
    with pytest.raises(TypeError, match="scales: expected a float32 or bfloat16"):
        op(*st, q.values, q.scales.double(), xq, xs, 0, *q.params())
    with pytest.raises(ValueError, match="bitmap: expected shape"):  # K = 100 from xq
        op(*st, q.values, q.scales, torch.zeros(3, 100, dtype=torch.int8), xs, 0, *q.params())
    with pytest.raises(ValueError, match="bitmap: row 0 sets bit"):  # K = 30: bits past it
        op(*st, q.values, q.scales, xq[:, :30].contiguous(), xs, 0, *q.params())
    # a bitmap row whose popcount disagrees with its offsets: caught before it is read
    bits = q.bitmap.clone()
    bits[3, 0] ^= 1
    with pytest.raises(ValueError, match="row_offsets: row 3"):
        op(q.row_offsets, bits, q.values, q.scales, xq, xs, 0, *q.params())
    n, _ = random_sparse("nm", (13, 41), {"n": 2, "m": 4}, density=0.5)
    qn = so.quantize(n)
    xq2, xs2 = so.quantize_activations(torch.randn(5, 41))
    meta = qn.metadata.clone()
    meta[2, -1] = 0xFF  # positions of the last group's slots past K = 41
    with pytest.raises(ValueError, match="metadata: position"):
        torch.ops.sparse_ops.nm_spmm_w8a8(meta, qn.values, qn.scales, xq2, xs2, 0, 2, 4)
    b, _ = random_sparse("bsr", (12, 42), {"blocksize": (3, 6)}, density=0.5)
    qb = so.quantize(b)
    xq3, xs3 = so.quantize_activations(torch.randn(5, 42))
    with pytest.raises(ValueError, match="c: W8A8 takes blocks whose width is a multiple of 4"):
        torch.ops.sparse_ops.bsr_spmm_w8a8(*qb.structure(), qb.values, qb.scales, xq3, xs3, 0,
                                           *qb.params())
    b, _ = random_sparse("bsr", (12, 40), {"blocksize": (3, 4)}, density=0.5)
    qb = so.quantize(b)
    col = qb.col_indices.clone()
    col[-1] = 10  # block column 10 of 10
    with pytest.raises(ValueError, match="col_indices: value 10"):
        torch.ops.sparse_ops.bsr_spmm_w8a8(qb.crow_indices, col, qb.values, qb.scales,
                                           xq3[:, :40].contiguous(), xs3, 0, *qb.params())


def test_w8a8_opcheck_and_empty():
    for layout, kw, (m, k) in [("bitmap", {}, (13, 41)), ("nm", {"n": 2, "m": 4}, (13, 41)),
                               ("bsr", {"blocksize": (3, 4)}, (12, 40))]:
        s, _ = random_sparse(layout, (m, k), kw, density=0.5)
        q = so.quantize(s, group_size=8)
        xq, xs = so.quantize_activations(torch.randn(5, k))
        op = getattr(torch.ops.sparse_ops, f"{layout}_spmm_w8a8").default
        torch.library.opcheck(op, (*q.structure(), q.values, q.scales, xq, xs, 8, *q.params()))
        y = op(*q.structure(), q.values, q.scales, xq[:0], xs[:0], 8, *q.params())
        assert y.shape == (m, 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout,kw", [("bitmap", {}), ("nm", {"n": 2, "m": 4}),
                                       ("bsr", {"blocksize": (3, 8)})])
def test_linear_runs_w8a8_when_allowed(layout, kw, dtype):
    m, k = (66, 128) if layout == "bsr" else (67, 129)
    s, _ = random_sparse(layout, (m, k), kw, density=0.5)
    q = so.quantize(s, activation_dtype="int8")
    assert q.activation_dtype == "int8" and "activation_dtype='int8'" in repr(q)
    bias = torch.randn(m).to(dtype)
    x = torch.randn(19, k).to(dtype)
    xq, xs = so.quantize_activations(x)
    want8 = _reference(q, xq, xs).t() + bias.double()
    want16 = q.to_dense().double() @ x.double().t()
    with torch.no_grad():
        w8a8.set_w8a8_mode("on")
        y = so.linear(x, q, bias)
        assert w8a8.last_path() == "w8a8" and y.dtype == dtype
        assert rel_err(y, want8) < (1e-5 if dtype == torch.float32 else 1e-2)
        w8a8.set_w8a8_mode("off")
        y16 = so.linear(x, q, bias)
        assert w8a8.last_path() == "w8a16"
        assert rel_err(y16, want16.t() + bias.double()) < (1e-5 if dtype == torch.float32
                                                           else 1e-2)
        # the activations' rounding is a fraction of a percent of the output
        assert 1e-4 < rel_err(y, want16.t() + bias.double()) < 2e-2
        w8a8.set_w8a8_mode("auto")
        ya = so.linear(x, q, bias)  # measured: either path, each checked above
        assert w8a8.last_path() in ("w8a8", "w8a16")
        assert rel_err(ya, want8 if w8a8.last_path() == "w8a8" else want16.t() +
                       bias.double()) < (1e-5 if dtype == torch.float32 else 1e-2)
        # one token (decode), a non-finite activation, or a matrix without the opt-in: W8A16
        w8a8.set_w8a8_mode("on")
        so.linear(x[:1], q)
        assert w8a8.last_path() == "w8a16"
        bad = x.clone()
        bad[3, 5] = float("nan")
        yb = so.linear(bad, q)
        assert w8a8.last_path() == "w8a16" and torch.isfinite(yb[0]).all()
        q16 = so.quantize(s)
        assert not w8a8.applies(q16, x, None)
        assert not w8a8.applies(q, x, "reference")
        # matmul (K, N) as well
        ym = so.matmul(q, x.t())
        assert w8a8.last_path() == "w8a8"
        assert rel_err(ym, _reference(q, xq, xs)) < (1e-5 if dtype == torch.float32 else 1e-2)


@pytest.mark.parametrize("layout,kw", [("csr", {}), ("bsr", {"blocksize": (4, 6)})])
def test_csr_and_narrow_bsr_keep_w8a16(layout, kw):
    """CSR has no W8A8 product; BSR blocks whose width is not a multiple of 4 neither."""
    s, _ = random_sparse(layout, (32, 66), kw, density=0.5)
    q = so.quantize(s, activation_dtype="int8")
    w8a8.set_w8a8_mode("on")
    x = torch.randn(9, 66)
    with torch.no_grad():
        y = so.linear(x, q)
    assert w8a8.last_path() == "w8a16"
    assert rel_err(y, x.double() @ q.to_dense().double().t()) < 1e-5


def test_activation_dtype_through_sparsify_layer_checkpoint_and_compile(tmp_path):
    from torch import nn

    torch.manual_seed(draw_seed())
    def mlp() -> nn.Module:
        return nn.Sequential(nn.Linear(96, 64), nn.ReLU(), nn.Linear(64, 40))

    model = mlp()
    so.sparsify(model, "nm", n=2, m=4, keep_dense=(), weight_dtype="int8",
                activation_dtype="int8")
    layer = model[0]
    assert layer.activation_dtype == "int8"
    assert layer.sparse_weight().activation_dtype == "int8"
    assert "activation_dtype='int8'" in repr(layer)
    x = torch.randn(24, 96)
    w8a8.set_w8a8_mode("on")
    with torch.no_grad():
        y = model(x)
        assert w8a8.last_path() == "w8a8"
        so.save_sparse(model, tmp_path / "m")
        back = so.load_sparse(mlp(), tmp_path / "m")
        assert back[0].activation_dtype == "int8"
        torch.testing.assert_close(back(x), y)
        compiled = torch.compile(model, fullgraph=True, backend="eager")
        torch.testing.assert_close(compiled(x), y)
    with pytest.raises(ValueError, match="activation_dtype: only used with"):
        so.sparsify(nn.Sequential(nn.Linear(8, 8)), "nm", n=2, m=4, activation_dtype="int8")
    with pytest.raises(ValueError, match="activation_dtype: expected one of"):
        so.quantize(random_sparse("bitmap", (8, 8), {})[0], activation_dtype="int4")
    with pytest.raises(ValueError, match="mode: expected"):
        w8a8.set_w8a8_mode("fast")


def test_fuzz_malformed_structures_w8a8():
    """Hypothesis cases of malformed bitmap, N:M and BSR structure (the fuzz cases of
    test_bitmap.py and test_csrc_fuzz.py) through the W8A8 ops at every level: a clear error
    or the float64 answer (run under ASan by `make sanitize`)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from tests.csrc.test_csrc_fuzz import bsr_case, bsr_dense, csr_valid, nm_case, nm_valid
    from tests.csrc.test_csrc_kernels import unpack_positions
    from tests.sparse_ops.test_bitmap import _structure_ok, _unpack, bitmap_case

    errors = (ValueError, TypeError)
    rng = np.random.default_rng(5)

    def tokens(n: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        return so.quantize_activations(torch.from_numpy(
            rng.standard_normal((n, k)).astype(np.float32)))

    def check(y: torch.Tensor, dense: np.ndarray, xq: torch.Tensor, xs: torch.Tensor) -> None:
        ref = torch.from_numpy(dense) @ (xq.double() * xs.double()[:, None]).t()
        assert y.shape == ref.shape
        if ref.numel():
            assert float((y.double() - ref).abs().max()) <= 1e-5 * max(1.0, float(ref.abs().max()))

    @settings(max_examples=100, deadline=None, derandomize=True)
    @given(bitmap_case(), st.sampled_from(LEVELS))
    def run_bitmap(case, level):
        k, bits, off, n_vals, param, n = case
        _C._set_simd_level(level)
        m = off.numel() - 1
        vals = torch.from_numpy(rng.integers(-127, 128, max(n_vals, 0)).astype(np.int8))
        xq, xs = tokens(max(n, 1), k)
        valid = _structure_ok(bits, off, k, param) and n_vals == param
        try:
            y = torch.ops.sparse_ops.bitmap_spmm_w8a8(off, bits, vals, torch.ones(m, 1), xq, xs,
                                                      0, param)
        except errors:
            assert not valid
            return
        assert valid
        dense = np.zeros((m, k))
        dense[_unpack(bits)[:, :k].bool().numpy()] = vals.numpy().astype(np.float64)
        check(y, dense, xq, xs)

    @settings(max_examples=100, deadline=None, derandomize=True)
    @given(nm_case(), st.sampled_from(LEVELS))
    def run_nm(case, level):
        nn, m, rows, k, n, meta, vslots = case
        _C._set_simd_level(level)
        q = torch.from_numpy(rng.integers(-127, 128, (rows, max(vslots, 0))).astype(np.int8))
        xq, xs = tokens(max(n, 1), k)
        valid = nm_valid(nn, m, rows, k, meta, vslots)
        try:
            y = torch.ops.sparse_ops.nm_spmm_w8a8(torch.from_numpy(meta), q, torch.ones(rows, 1),
                                                  xq, xs, 0, nn, m)
        except errors:
            assert not valid
            return
        assert valid
        dense = np.zeros((rows, k))
        if rows and vslots:
            cols = (np.arange(vslots) // nn) * m + unpack_positions(meta, vslots, m)
            for i in range(rows):
                np.add.at(dense[i], cols[i], q[i].numpy().astype(np.float64))
        check(y, dense, xq, xs)

    @settings(max_examples=100, deadline=None, derandomize=True)
    @given(bsr_case(), st.sampled_from(LEVELS))
    def run_bsr(case, level):
        crow, col, nblocks, r, c, k_rows, n = case
        _C._set_simd_level(level)
        mb = max(crow.shape[0] - 1, 0)
        vals = torch.from_numpy(rng.integers(-127, 128, (nblocks, r, c)).astype(np.int8))
        if k_rows:
            xq, xs = tokens(max(n, 1), k_rows)
        else:
            xq, xs = torch.zeros(max(n, 1), 0, dtype=torch.int8), torch.ones(max(n, 1))
        kb = k_rows // c
        valid = (k_rows % c == 0 and c % 4 == 0 and csr_valid(crow, col, None, mb, kb)
                 and nblocks == col.shape[0])
        try:
            y = torch.ops.sparse_ops.bsr_spmm_w8a8(torch.from_numpy(crow), torch.from_numpy(col),
                                                   vals, torch.ones(mb * r, 1), xq, xs, 0, r, c)
        except errors:
            assert not valid
            return
        assert valid
        check(y, bsr_dense(crow, col, vals.numpy().astype(np.float64), mb, kb), xq, xs)

    run_bitmap()
    run_nm()
    run_bsr()


def test_int8_dots_agree_self_check():
    """The self-check the AMX engine passes before it is offered (exact integer products on
    bitmap panels per row and in groups of 32, and on BSR 32x32 blocks): every pair of this
    CPU's engines at each level agrees, including amx-emulated (or amx) against vnni; unknown
    names are refused."""
    for lv in LEVELS:
        _C._set_simd_level(lv)
        dots = _C._int8_dots()
        for d in dots:
            assert _C._int8_dots_agree(dots[0], d), (lv, d)
        if "vnni" in dots and "amx-emulated" in dots:
            assert _C._int8_dots_agree("amx-emulated", "vnni")
        with pytest.raises(ValueError, match="engine: 'bogus'"):
            _C._int8_dots_agree("bogus", dots[0])


def test_int8_dot_engine_selection():
    """The engine names, the setter's errors, auto (amx, else vnni where the CPU has it) and
    SPARSE_OPS_INT8_DOT read at start (a fresh process)."""
    import os
    import subprocess
    import sys

    for lv in LEVELS:
        _C._set_simd_level(lv)
        dots = _C._int8_dots()
        assert dots == ["plain"] if lv == "scalar" else dots[:2] == ["madd", "vnni-emulated"]
        auto = _C._set_int8_dot("auto")
        best = next((d for d in ("amx", "vnni") if d in dots), dots[0])
        assert auto == best == w8a8.dot_engine()
        # the emulations exist where the level has the engine's code, the instructions
        # only where the CPU runs them
        assert ("amx-emulated" in dots) == (lv == "avx512")
        assert "amx" not in dots or lv == "avx512"
        for d in dots:
            assert _C._set_int8_dot(d) == d == w8a8.dot_engine()
        if "amx" not in dots:
            with pytest.raises(ValueError, match="engine: 'amx'"):
                _C._set_int8_dot("amx")
        if lv != "scalar":
            with pytest.raises(ValueError, match="engine: 'plain'"):
                _C._set_int8_dot("plain")
    # forced at the best level, a lower level without the engine runs its own
    _C._set_simd_level(LEVELS[-1])
    if LEVELS[-1] != "scalar":
        _C._set_int8_dot("vnni-emulated")
        _C._set_simd_level("scalar")
        assert _C._int8_dot() == "plain"
    code = "from sparse_ops import _C; print(_C._int8_dot())"
    for env, want in [("vnni-emulated", "vnni-emulated"), ("bogus", None)]:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**os.environ, "SPARSE_OPS_INT8_DOT": env},
                             check=True).stdout.strip()
        if LEVELS[-1] == "scalar":
            assert out == "plain"
        elif want:
            assert out == want
        else:  # an unknown name: auto
            assert out in ("madd", "vnni")
