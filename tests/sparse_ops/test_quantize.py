"""int8 values with scales in every layout (``so.quantize``, ``sparsify(weight_dtype="int8")``).

Products are compared with a float64 product of the dequantized weight (``to_dense()``, which
is checked itself against ``q * scale`` computed here from the parts): relative error < 1e-5
for float32 activations; 1e-2 for bfloat16 / float16 (the product sums in float32, the output
is rounded to 8 / 11 mantissa bits and, per row, scaled after that rounding: 2 roundings of
2^-8 = 3.9e-3 each at most).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import sparse_ops as so
from sparse_ops import _C
from sparse_ops.quantize import group_index, num_scale_groups, quantization_error
from tests.helpers import (
    CASE_IDS,
    CASES,
    dense_at_slots,
    dense_of_slots,
    draw_seed,
    random_sparse,
    rel_err,
    repeat_nm24_positions,
)

LEVELS = list(_C._supported_simd_levels())
TOL = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 1e-2}


pytestmark = pytest.mark.usefixtures("restore_simd_and_panel")


def _parts_dense(q: so.SparseMatrix) -> torch.Tensor:
    """The dequantized weight from the parts alone: q * scales[row, col // G] at each stored
    slot (rows and columns of the slots read from index grids by ``dense_at_slots``, built
    from the index tensors alone), densified by the float twin of the structure."""
    m, k = q.shape
    rows = dense_at_slots(q, torch.arange(m)[:, None].expand(m, k).contiguous()).long()
    cols = dense_at_slots(q, torch.arange(k)[None, :].expand(m, k).contiguous()).long()
    g = 0 if q.group_size is None else torch.div(cols, q.group_size, rounding_mode="floor")
    vals = q.values.double() * q.scales.double()[rows, g]
    return type(q).from_parts({**{n: getattr(q, n) for n in q.tensor_names}, "values": vals},
                              q.shape, q.params(), validate=False).to_dense()


@pytest.mark.parametrize("group_size", [None, 32, 7])
@pytest.mark.parametrize("scale_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("idx", range(len(CASES)), ids=CASE_IDS)
def test_quantize_parts_error_and_bytes(idx, group_size, scale_dtype):
    layout, shape, kw = CASES[idx]
    s, dense = random_sparse(layout, shape, kw)
    q = so.quantize(s, "int8", group_size=group_size, scale_dtype=scale_dtype)
    assert type(q) is type(s) and q.values.dtype == torch.int8 and q.quantized
    assert q.scales.dtype == scale_dtype
    assert tuple(q.scales.shape) == (shape[0], num_scale_groups(shape[1], group_size))
    assert int(q.values.abs().max()) <= 127 and int(q.values.abs().max()) >= 64
    deq = q.to_dense()
    assert deq.dtype == torch.float32
    torch.testing.assert_close(deq.double(), _parts_dense(q), rtol=1e-6, atol=1e-7)
    # every entry within half a step of the float weight, zero outside the structure
    step = q.scales.double().reshape(-1)[group_index(q, group_size)]
    w = s.values.reshape(-1).double()
    assert ((q.values.reshape(-1).double() * step - w).abs() <= step / 2 + 1e-6).all()
    assert ((deq != 0) <= (dense != 0)).all()
    # bytes: the same structure, one byte a value, plus the scales
    idx_bytes = sum(t.numel() * t.element_size() for n, t in zip(s.tensor_names, s.tensors(),
                                                                 strict=True) if n != "values")
    assert q.nbytes == idx_bytes + q.nnz + q.scales.numel() * q.scales.element_size()
    assert s.nbytes > q.nbytes or s.nnz == 0
    # dequantize(): the float matrix of the same structure
    d = q.dequantize(torch.float64)
    assert not d.quantized and d.values.dtype == torch.float64
    torch.testing.assert_close(d.to_dense(), deq.double(), rtol=1e-6, atol=1e-7)
    assert q.to(torch.float64).values.dtype == torch.float64  # cast = dequantize
    assert "int8" in repr(q) or "scales" in repr(q)


@pytest.mark.parametrize("backend", ["cpp", "reference"])
@pytest.mark.parametrize("group_size", [None, 16])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("idx", range(len(CASES)), ids=CASE_IDS)
def test_products_against_float64(idx, dtype, group_size, backend):
    layout, shape, kw = CASES[idx]
    s, _ = random_sparse(layout, shape, kw)
    q = so.quantize(s, group_size=group_size)
    ref_w = q.to_dense().double()
    g = torch.Generator().manual_seed(draw_seed())
    for n in (1, 2, 19):
        x = torch.randn(shape[1], n, generator=g).to(dtype)
        y = so.matmul(q, x, backend=backend)
        assert y.dtype == dtype and y.shape == (shape[0], n)
        assert rel_err(y, ref_w @ x.double()) < TOL[dtype]
        xb = torch.randn(3, n, shape[1], generator=g).to(dtype)  # (..., K)
        bias = torch.randn(shape[0], generator=g).to(dtype)
        yl = so.linear(xb, q, bias, backend=backend)
        assert yl.dtype == dtype and yl.shape == (3, n, shape[0])
        assert rel_err(yl, xb.double() @ ref_w.T + bias.double()) < TOL[dtype]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("panel", ["on", "off"])
@pytest.mark.parametrize("layout,kw", [("bitmap", {}), ("nm", {"n": 2, "m": 4}),
                                       ("nm", {"n": 1, "m": 4}), ("csr", {}),
                                       ("bsr", {"blocksize": (4, 8)})])
def test_int8_kernels_every_level(level, panel, layout, kw):
    """The C++ kernels read int8 values as stored (widened in registers) at every SIMD level,
    N = 1 (SpMV) and wide (panel on and off), odd shapes across several row chunks."""
    _C._set_simd_level(level)
    _C._set_panel(panel)
    shape = (100, 696) if layout == "bsr" else (101, 701)
    s, _ = random_sparse(layout, shape, kw, density=0.5)
    q = so.quantize(s)
    ref_w = q.to_dense().double()
    g = torch.Generator().manual_seed(draw_seed())
    for n in (1, 3, 8, 45):
        x = torch.randn(shape[1], n, generator=g)
        assert rel_err(so.matmul(q, x), ref_w @ x.double()) < 1e-5, (level, panel, n)


def test_raw_op_takes_int8_values_and_rejects_them_where_it_cannot():
    s, _ = random_sparse("csr", (37, 70), {})
    q = so.quantize(s)
    x = torch.randn(70, 5)
    ops = torch.ops.sparse_ops
    y = ops.csr_spmm(*q.structure(), q.values, x)  # the integers' product, x's dtype
    assert y.dtype == torch.float32
    assert rel_err(y, q.with_values(q.values).dequantize().to_dense().double() @ x.double()
                   / q.scales.double()) < 1e-5
    with pytest.raises(TypeError, match="x: int8 values need"):
        ops.csr_spmm(*q.structure(), q.values, x.double())
    with pytest.raises(TypeError, match="x: int8 values need"):
        ops.csr_spmm(*q.structure(), q.values, x.to(torch.int8))
    with pytest.raises(TypeError, match="inference only"):
        ops.csr_spmm_t(*q.structure(), q.values, torch.randn(37, 5), 70)
    with pytest.raises(TypeError, match="a: expected"):
        ops.csr_sddmm(*q.structure(), torch.ones(37, 2, dtype=torch.int8),
                      torch.ones(70, 2, dtype=torch.int8))
    torch.library.opcheck(ops.csr_spmm.default, (*q.structure(), q.values, x))
    nm, _ = random_sparse("nm", (13, 41), {"n": 2, "m": 4})
    qn = so.quantize(nm)
    torch.library.opcheck(ops.nm_spmm.default, (*qn.structure(), qn.values, torch.randn(41, 3),
                                               *qn.params()))


def test_bad_inputs_name_the_argument():
    s, _ = random_sparse("bitmap", (21, 40), {})
    q = so.quantize(s, group_size=8)
    with pytest.raises(TypeError, match="x: an int8 weight takes float32"):
        so.matmul(q, torch.randn(40, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="x: has 39 rows"):
        so.matmul(q, torch.randn(39, 2))
    with pytest.raises(TypeError, match="bias: expected a torch.bfloat16"):
        so.linear(torch.randn(2, 40).bfloat16(), q, torch.randn(21))
    with pytest.raises(RuntimeError, match="inference only"):
        so.linear(torch.randn(2, 40, requires_grad=True), q)
    bad = q.with_values(q.values)
    bad.scales = torch.ones(21, 2)
    with pytest.raises(ValueError, match=r"weight.scales: expected shape \(21, 5\)"):
        so.linear(torch.randn(2, 40), bad)
    with pytest.raises(ValueError, match="group_size: expected a positive int"):
        so.quantize(s, group_size=0)
    with pytest.raises(TypeError, match="group_size: expected an int"):
        so.quantize(s, group_size=32.0)
    with pytest.raises(ValueError, match="already quantized"):
        so.quantize(q)
    with pytest.raises(ValueError, match="dtype: expected 'int8'"):
        so.quantize(s, "int4")
    with pytest.raises(TypeError, match="scale_dtype"):
        so.quantize(s, scale_dtype=torch.float16)


def test_layer_error_report_per_row_and_grouped():
    """Per-layer output error of int8 against the unquantized sparse layer, Gaussian weights:
    per row <= 1 %, per group of 128 / 32 smaller."""
    g = torch.Generator().manual_seed(draw_seed())
    w = torch.randn(512, 1024, generator=g)
    x = torch.randn(1024, 64, generator=g)
    for layout, kw in [("bitmap", {"density": 0.5}), ("nm", {"n": 2, "m": 4}),
                       ("csr", {"density": 0.3}), ("bsr", {"density": 0.3, "blocksize": (32, 32)})]:
        opts = {k: v for k, v in kw.items() if k != "density"}
        s = so.to_sparse(so.prune(w, layout, kw.get("density"), **opts), layout, **opts)
        errs = [quantization_error(s, so.quantize(s, group_size=gs), x) for gs in (None, 128, 32)]
        assert errs[0] <= 0.01, (layout, errs)
        assert errs[2] < errs[1] < errs[0], (layout, errs)


def _mlp(dtype=torch.float32) -> nn.Module:
    torch.manual_seed(draw_seed())
    return nn.Sequential(nn.Linear(70, 96), nn.ReLU(), nn.Linear(96, 45)).to(dtype)


@pytest.mark.parametrize("group_size", [None, 32])
def test_sparsify_int8_layer_state_and_checkpoint(tmp_path, group_size):
    dense = _mlp()
    x = torch.randn(5, 70)
    float_model = so.sparsify(_copy(dense), "bitmap", density=0.5)
    model = so.sparsify(_copy(dense), "bitmap", density=0.5, weight_dtype="int8",
                        group_size=group_size)
    layer = model[0]
    assert isinstance(layer, so.SparseLinear) and layer.values.dtype == torch.int8
    assert not layer.values.requires_grad and "scales" in layer.state_dict()
    assert "int8" in repr(layer)
    errs = model.sparsify_quant_errors
    assert set(errs) == {"0", "2"} and all(0 < e < 0.02 for e in errs.values()), errs
    with torch.no_grad():
        y, y_float = model(x), float_model(x)
    assert rel_err(y, y_float) < 0.02
    # the layer's weight is the dequantized one
    w = layer.sparse_weight()
    assert w.quantized and w.group_size == group_size
    torch.testing.assert_close(layer.weight, w.to_dense())
    # save / load restores an int8 model giving the same output
    so.save_sparse(model, tmp_path / "ck")
    fresh = so.load_sparse(_mlp(), tmp_path / "ck")
    assert fresh[0].values.dtype == torch.int8 and fresh[0].group_size == group_size
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), y)


def test_sparsify_bad_weight_dtype():
    with pytest.raises(ValueError, match="weight_dtype"):
        so.sparsify(_mlp(), "csr", density=0.5, weight_dtype="int4")
    with pytest.raises(ValueError, match="group_size: only used with"):
        so.sparsify(_mlp(), "csr", density=0.5, group_size=32)


@pytest.mark.parametrize("layout,kw", [("nm", {"n": 2, "m": 4}), ("bitmap", {"density": 0.5})])
@pytest.mark.parametrize("group_size", [None, 32])
@pytest.mark.parametrize("batch", [1, 3])
def test_compile_fullgraph_int8_linear(layout, kw, group_size, batch):
    """torch.compile(fullgraph) through int8 layers, per row and with group scales (the
    grouped ops' fakes: one token and several)."""
    model = so.sparsify(_mlp(), layout, **kw, weight_dtype="int8", group_size=group_size)
    x = torch.randn(batch, 70)
    with torch.no_grad():
        want = model(x)
        got = torch.compile(model, fullgraph=True, backend="eager")(x)
    torch.testing.assert_close(got, want)


def test_bfloat16_model_int8_weights():
    """A bf16 model, pruned then quantized: logits against the bf16 sparse model within the
    error of int8 per row (stated: < 2 %)."""
    dense = _mlp(torch.bfloat16)
    x = torch.randn(4, 70).bfloat16()
    ref = so.sparsify(_copy(dense), "nm", n=2, m=4)
    q = so.sparsify(_copy(dense), "nm", n=2, m=4, weight_dtype="int8")
    with torch.no_grad():
        assert rel_err(q(x), ref(x)) < 0.02


def _copy(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model)


@pytest.mark.parametrize("group_size", [None, 16])
@pytest.mark.parametrize("layout,shape,kw", [("bitmap", (37, 70), {}),
                                             ("nm", (19, 45), {"n": 2, "m": 4}),
                                             ("csr", (23, 41), {}),
                                             ("bsr", (24, 40), {"blocksize": (4, 8)})])
def test_triton_backend_int8(layout, shape, kw, group_size):
    """The Triton spmm kernels read int8 values (W8A16) under the interpreter (or on CUDA)."""
    from sparse_ops.kernels.autotune import INTERPRET

    if not INTERPRET and not torch.cuda.is_available():
        pytest.skip("Triton kernels need CUDA, or TRITON_INTERPRET=1 set before triton is "
                    "imported")
    dev = "cpu" if INTERPRET or not torch.cuda.is_available() else "cuda"
    s, _ = random_sparse(layout, shape, kw)
    q = so.quantize(s, group_size=group_size).to(dev)
    ref_w = q.to_dense().double().cpu()
    g = torch.Generator().manual_seed(draw_seed())
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(shape[1], 5, generator=g).to(dtype)
        y = so.matmul(q, x.to(dev), backend="triton")
        assert y.dtype == dtype
        assert rel_err(y.cpu(), ref_w @ x.double()) < TOL[dtype]


def test_dequant_runs_op_checks_its_runs_before_reading():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    op = torch.ops.sparse_ops.dequant_runs
    q = torch.tensor([[1, -2, 3], [4, 5, -127]], dtype=torch.int8)
    sc = torch.tensor([0.5, 2.0, 1.0])
    off = torch.tensor([0, 2, 2, 6], dtype=torch.int32)
    want = torch.tensor([[0.5, -1.0, 3.0], [4.0, 5.0, -127.0]])
    for dt in (torch.float32, torch.bfloat16, torch.float16):
        got = op(q, sc, off, dt)
        assert got.dtype == dt and got.shape == q.shape
        torch.testing.assert_close(got.float(), want)
    torch.testing.assert_close(op(q, sc.bfloat16(), off, torch.float32), want)
    torch.library.opcheck(op.default, (q, sc, off, torch.float32))
    bad = [((q.float(), sc, off, torch.float32), TypeError, "values: expected an int8"),
           ((q, sc.double(), off, torch.float32), TypeError, "scales: expected"),
           ((q, sc, off.long(), torch.float32), TypeError, "run_off: expected an int32"),
           ((q, sc, off, torch.int8), TypeError, "dtype: expected"),
           ((q, sc, off[:3], torch.float32), ValueError, "run_off: expected shape"),
           ((q, sc, torch.tensor([0, 2, 2, 7], dtype=torch.int32), torch.float32), ValueError,
            "run_off: must run from 0"),
           ((q, sc, torch.tensor([0, 4, 2, 6], dtype=torch.int32), torch.float32), ValueError,
            "run_off: decreases at run 1")]
    for args, exc, msg in bad:
        with pytest.raises(exc, match=msg):
            op(*args)

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.integers(-2**31, 2**31 - 1), min_size=1, max_size=6))
    def fuzz(offs):  # any run offsets: a clear error or a right answer, never a bad read
        o = torch.tensor(offs, dtype=torch.int32)
        s = torch.ones(len(offs) - 1) if len(offs) > 1 else torch.ones(0)
        try:
            got = op(q, s, o, torch.float32)
        except ValueError:
            return
        assert torch.equal(got, q.float())

    fuzz()


@pytest.mark.parametrize("perm", [True, False])
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("k", [8, 63, 64, 136, 701, 1030])
def test_int8_spmv_shuffle_kernels(level, k, perm):
    """N = 1 with int8 values, bitmap, 2:4 and 1:4 (on AVX2 by byte shuffles, value * 2^24 in
    float lanes, every column multiplied; 2:4 there also by in-lane permutes of x, ``perm``):
    rows of every tail length, x small, large but inside the kernels' range (2^60) and past
    it (2^70: the float paths), and 2:4 rows that repeat a position in a group (the reference
    sums both slots)."""
    _C._set_simd_level(level)
    _C._set_nm4_perm(perm)
    seed = draw_seed()
    g = torch.Generator().manual_seed(seed)
    for layout, kw, density in [("bitmap", {}, 0.5), ("bitmap", {}, 0.9),
                                ("nm", {"n": 2, "m": 4}, None), ("nm", {"n": 1, "m": 4}, None)]:
        q = so.quantize(random_sparse(layout, (29, k), kw, density=density, seed=seed)[0])
        ref_w = q.to_dense().double()
        for scale in (1e-30, 1.0, 2.0**60, 2.0**70):
            x = torch.randn(1, k, generator=g) * scale
            y = so.linear(x, q)
            assert torch.isfinite(y).all(), (layout, k, scale, seed)
            assert rel_err(y, x.double() @ ref_w.T) < 1e-5, (layout, k, scale, seed)
    # repeated positions: slot 1 of some groups takes slot 0's position
    q = so.quantize(random_sparse("nm", (29, k), {"n": 2, "m": 4}, seed=seed)[0])
    f, cols = repeat_nm24_positions(q, g, torch.arange(0, 29, 3), values=q.values.float())
    d = so.quantize(f)
    w = dense_of_slots(cols, d.values.double() * d.scales.double(), q.shape)
    x = torch.randn(1, k, generator=g)
    assert rel_err(so.linear(x, d), x.double() @ w.T) < 1e-5, (k, seed)


@pytest.mark.parametrize("perm", [True, False])
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("n,m,group_size", [(2, 4, 128), (2, 4, 32), (2, 4, 4), (1, 4, 64),
                                            (1, 4, 8), (3, 8, 16), (2, 3, 6), (5, 16, 32)])
def test_nm_grouped_spmv_in_registers(level, n, m, group_size, perm):
    """N:M decode with group scales applied in the SpMV (every level, aligned and unaligned
    groups, odd K; the AVX2 2:4 SpMV by permutes and by shuffles), against float64 on the
    dequantized weight; the op's errors."""
    _C._set_simd_level(level)
    _C._set_nm4_perm(perm)
    seed = draw_seed()
    g = torch.Generator().manual_seed(seed)
    s, _ = random_sparse("nm", (37, 301), {"n": n, "m": m}, seed=seed)
    q = so.quantize(s, group_size=group_size)
    ref_w = q.to_dense().double()
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(1, 301, generator=g).to(dtype)
        y = so.linear(x, q)
        assert y.shape == (1, 37) and y.dtype == dtype
        assert rel_err(y, x.double() @ ref_w.T) < TOL[dtype], seed
    op = torch.ops.sparse_ops.nm_spmv_grouped
    x = torch.randn(301)
    torch.library.opcheck(op.default, (q.metadata, q.values, q.scales, x, group_size, n, m))
    with pytest.raises(ValueError, match="group_size: expected a positive multiple"):
        op(q.metadata, q.values, q.scales, x, group_size + 1, n, m)
    with pytest.raises(ValueError, match="scales: expected shape"):
        op(q.metadata, q.values, q.scales[:, :1].contiguous(), x, group_size, n, m) \
            if q.scales.shape[1] > 1 else op(q.metadata, q.values, q.scales[:5], x,
                                               group_size, n, m)
    with pytest.raises(TypeError, match="values: expected an int8"):
        op(q.metadata, q.values.float(), q.scales, x, group_size, n, m)
    with pytest.raises(ValueError, match="x: expected a"):
        op(q.metadata, q.values, q.scales, torch.randn(301, 2), group_size, n, m)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("group_size", [32, 64, 128, 96, 16, 5])
def test_bitmap_grouped_spmv_in_registers(level, group_size):
    """Bitmap decode with group scales applied in the SpMV (every level; multiples of 32 by
    byte shuffles on the vector levels, other sizes and x past 2^64 bit by bit), odd K,
    against float64 on the dequantized weight; the op's errors."""
    _C._set_simd_level(level)
    seed = draw_seed()
    g = torch.Generator().manual_seed(seed)
    s, _ = random_sparse("bitmap", (37, 301), {}, density=0.5, seed=seed)
    q = so.quantize(s, group_size=group_size)
    ref_w = q.to_dense().double()
    op = torch.ops.sparse_ops.bitmap_spmv_grouped
    args = (q.row_offsets, q.bitmap, q.values, q.scales)
    for scale in (1.0, 2.0**70):
        x = torch.randn(301, generator=g) * scale
        y = op(*args, x, group_size, q.nnz)
        assert y.shape == (37, 1) and y.dtype == torch.float32
        assert rel_err(y.T, x.double() @ ref_w.T) < 1e-5, (seed, scale)
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(1, 301, generator=g).to(dtype)
        y = so.linear(x, q)
        assert y.shape == (1, 37) and y.dtype == dtype
        assert rel_err(y, x.double() @ ref_w.T) < TOL[dtype], seed
    x = torch.randn(301)
    torch.library.opcheck(op.default, (*args, x, group_size, q.nnz))
    with pytest.raises(ValueError, match="group_size: expected a positive"):
        op(*args, x, 0, q.nnz)
    with pytest.raises(ValueError, match="scales: expected shape"):
        op(q.row_offsets, q.bitmap, q.values, q.scales[:5], x, group_size, q.nnz)
    with pytest.raises(TypeError, match="values: expected an int8"):
        op(q.row_offsets, q.bitmap, q.values.float(), q.scales, x, group_size, q.nnz)
    with pytest.raises(ValueError, match="x: expected a"):
        op(*args, torch.randn(301, 2), group_size, q.nnz)
    bad = q.bitmap.clone()
    bad[3, 0] ^= 1  # one bit more or less than the row's span
    with pytest.raises(ValueError, match="bitmap"):
        op(q.row_offsets, bad, q.values, q.scales, x, group_size, q.nnz)


@pytest.mark.usefixtures("restore_simd_and_panel")
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("panel", ["on", "off"])
@pytest.mark.parametrize("layout,kw,group_size",
                         [("bitmap", {}, 128), ("bitmap", {}, 32), ("bitmap", {}, 12),
                          ("bitmap", {}, 5), ("nm", {"n": 2, "m": 4}, 128),
                          ("nm", {"n": 2, "m": 4}, 4), ("nm", {"n": 1, "m": 3}, 6),
                          ("nm", {"n": 3, "m": 8}, 40)],
                         ids=["bitmap-g128", "bitmap-g32", "bitmap-g12", "bitmap-g5", "2:4-g128",
                              "2:4-g4", "1:3-g6", "3:8-g40"])
def test_grouped_spmm_scales_inside(level, panel, layout, kw, group_size):
    """Wide products (N > 1) of int8 values with group scales, scaled inside the product
    (the dense panel as it expands a row; the sparse kernels on the chunk's widened values),
    at every level, both paths, groups that cut bitmap words and panel chunks (K = 701 spans
    three 256-column chunks), fp32 and bf16 x, against float64 on the dequantized weight;
    the ops' opcheck and errors."""
    _C._set_simd_level(level)
    _C._set_panel(panel)
    seed = draw_seed()
    g = torch.Generator().manual_seed(seed)
    k = 702 if layout == "nm" and kw["m"] == 3 else 701
    k = 704 if layout == "nm" and kw["m"] == 8 else k
    s, _ = random_sparse(layout, (101, k), kw, density=0.5, seed=seed)
    q = so.quantize(s, group_size=group_size)
    ref_w = q.to_dense().double()
    op = (torch.ops.sparse_ops.nm_spmm_grouped if layout == "nm"
          else torch.ops.sparse_ops.bitmap_spmm_grouped)
    args = (*q.structure(), q.values, q.scales)
    for n in (2, 5, 17, 40):
        x = torch.randn(k, n, generator=g)
        y = op(*args, x, group_size, *q.params())
        assert y.shape == (101, n) and y.dtype == torch.float32
        assert rel_err(y, ref_w @ x.double()) < 1e-5, (seed, n, _C._last_path())
        assert _C._last_path() == (f"{layout}.panel" if panel == "on"
                                   else ("bitmap.csr" if layout == "bitmap" else "nm.slots"))
        for dtype in (torch.float32, torch.bfloat16):
            xb = torch.randn(n, k, generator=g).to(dtype)
            yb = so.linear(xb, q)
            assert yb.shape == (n, 101) and yb.dtype == dtype
            assert rel_err(yb, xb.double() @ ref_w.T) < TOL[dtype], (seed, n, dtype)
    x = torch.randn(k, 3)
    torch.library.opcheck(op.default, (*args, x, group_size, *q.params()))
    with pytest.raises(ValueError, match="scales: expected shape"):
        op(*args[:-1], q.scales[:5], x, group_size, *q.params())
    with pytest.raises(TypeError, match="values: expected an int8"):
        op(*args[:-2], q.values.float(), q.scales, x, group_size, *q.params())
    # x's K against the structure's (a bitmap takes K from x: its rows' bytes must match)
    with pytest.raises(ValueError, match="(bitmap|metadata): expected shape"):
        op(*args, torch.randn(k + 64, 3), group_size, *q.params())


def _fuzz_nm_int8():
    """Hypothesis cases of malformed N:M structure (tests/csrc/test_csrc_fuzz.nm_case) with int8
    values through the torch ops: a clear error, or the right answer (run under ASan by
    `make sanitize`)."""
    import numpy as np
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from tests.csrc.test_csrc_fuzz import nm_case, nm_valid
    from tests.csrc.test_csrc_kernels import unpack_positions

    @settings(max_examples=150, deadline=None, derandomize=True)
    @given(nm_case(), st.sampled_from(LEVELS), st.sampled_from([None, 8, 16]))
    def run(case, level, group_size):
        nn, m, rows, k, n, meta, vslots = case
        _C._set_simd_level(level)
        rng = np.random.default_rng(3)
        q = torch.from_numpy(rng.integers(-127, 128, (rows, max(vslots, 0))).astype(np.int8))
        x = torch.from_numpy(rng.standard_normal((k, max(n, 1))).astype(np.float32))
        valid = nm_valid(nn, m, rows, k, meta, vslots)
        mt = torch.from_numpy(meta)
        errors = (ValueError, TypeError)
        try:
            y = torch.ops.sparse_ops.nm_spmm(mt, q, x, nn, m)
        except errors:
            assert not valid
            y = None
        if valid:
            assert y is not None
            dense = np.zeros((rows, k))
            if rows and vslots:
                pos = unpack_positions(meta, vslots, m)
                cols = (np.arange(vslots) // nn) * m + pos
                for i in range(rows):
                    np.add.at(dense[i], cols[i], q[i].numpy().astype(np.float64))
            ref = dense @ x.double().numpy()
            assert y.shape == ref.shape
            if ref.size:
                err = np.abs(y.double().numpy() - ref).max()
                assert err <= 1e-5 * max(1.0, np.abs(ref).max())
        if group_size is not None and m <= 16 and k > 0 and group_size % max(m, 1) == 0:
            groups = -(-k // group_size)
            sc = torch.ones(rows, groups)
            try:
                yg = torch.ops.sparse_ops.nm_spmv_grouped(mt, q, sc, x[:, :1].contiguous(),
                                                          group_size, nn, m)
            except errors:
                assert not valid
            else:
                assert valid
                torch.testing.assert_close(yg, y[:, :1], rtol=1e-5, atol=1e-4)
            try:  # the wide product (N > 1: the panel or the slots on scaled values)
                yw = torch.ops.sparse_ops.nm_spmm_grouped(mt, q, sc, x, group_size, nn, m)
            except errors:
                assert not valid
            else:
                assert valid
                torch.testing.assert_close(yw, y, rtol=1e-5, atol=1e-4)

    run()


def test_fuzz_nm_int8_values():
    _fuzz_nm_int8()


@pytest.mark.parametrize("level", LEVELS)
def test_dequant_runs_matches_torch_bit_for_bit(level):
    """dequant_runs (SIMD on the vector levels) against torch's own multiply and rounding:
    runs of every length (empty, tails of each vector width, long), non-finite and huge
    scales, each output dtype."""
    _C._set_simd_level(level)
    seed = draw_seed()
    g = torch.Generator().manual_seed(seed)
    lengths = torch.cat([torch.arange(0, 40), torch.randint(0, 300, (60,), generator=g)])
    q = torch.randint(-127, 128, (int(lengths.sum()),), generator=g, dtype=torch.int8)
    off = torch.zeros(len(lengths) + 1, dtype=torch.int32)
    off[1:] = torch.cumsum(lengths, 0)
    sc = torch.randn(len(lengths), generator=g) * 0.05
    sc[[3, 17, 41]] = torch.tensor([float("inf"), float("nan"), 3e37])
    # bfloat16 ties and their neighbours (1 + 2^-8 lies halfway between two bfloat16 values):
    # round to nearest even must pick the even one, the neighbours their nearest
    ties = torch.tensor([1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, 1 + 2**-8 - 2**-20])
    sc[[5, 6, 7, 8]] = ties
    sc[[50, 51, 52, 53]] = -ties
    want32 = q.float() * torch.repeat_interleave(sc, lengths)
    for dt in (torch.float32, torch.bfloat16, torch.float16):
        got = torch.ops.sparse_ops.dequant_runs(q, sc, off, dt)
        torch.testing.assert_close(got, want32.to(dt), rtol=0, atol=0, equal_nan=True,
                                   msg=lambda m, dt=dt: f"{dt}, seed {seed}: {m}")
