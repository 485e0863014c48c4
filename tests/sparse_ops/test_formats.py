"""Formats: round trips, nbytes, torch.sparse interop, validation errors."""

from __future__ import annotations

import pytest
import torch

import sparse_ops as so
from sparse_ops.nm import pack_positions, unpack_positions
from tests.helpers import random_sparse


def test_round_trip_and_properties(case):
    layout, shape, kw = case
    s, dense = random_sparse(layout, shape, kw)
    assert s.layout == layout and s.shape == shape and s.dtype == torch.float32
    assert torch.equal(s.to_dense().double(), dense)
    assert bool((dense != 0).any())
    assert s.nnz == s.values.numel()
    assert s.density == pytest.approx(s.nnz / (shape[0] * shape[1]))
    assert s.nbytes == sum(t.numel() * t.element_size() for t in s.tensors())
    again = so.to_sparse(s.to_dense(), layout, **kw)
    assert torch.equal(again.to_dense(), s.to_dense())


def test_nbytes_counts_values_and_indices():
    w = torch.zeros(100, 200)
    w[3, 7] = 1.0
    w[50, 199] = 2.0
    s = so.to_sparse(w, "csr")
    # int32 row pointers, int16 columns (K <= 32767), fp32 values.
    assert s.nbytes == 101 * 4 + 2 * 2 + 2 * 4
    nm = so.to_sparse(so.prune(torch.randn(8, 16), "nm", n=2, m=4), "nm", n=2, m=4)
    assert nm.metadata.dtype == torch.uint8
    assert nm.nbytes == 8 * 8 * 4 + 8 * 2  # 8 slots of fp32 + 8 slots * 2 bits per row


def test_nm_packing_2_bits_for_m4():
    pos = torch.tensor([[0, 3, 1, 2, 2, 3]])
    meta = pack_positions(pos, 4)
    assert meta.tolist() == [[0 | 3 << 2 | 1 << 4 | 2 << 6, 2 | 3 << 2]]
    assert unpack_positions(meta, 6, 4).tolist() == pos.tolist()


@pytest.mark.parametrize("n,m", [(1, 2), (2, 4), (3, 8), (7, 16), (15, 16), (2, 3)])
def test_nm_any_n_m(n, m):
    w = torch.randn(5, 3 * m + 1, dtype=torch.float64)
    p = so.prune(w, "nm", n=n, m=m)
    s = so.to_sparse(p, "nm", n=n, m=m)
    assert torch.equal(s.to_dense(), p)
    groups = torch.nn.functional.pad(p, (0, m - 1)).unfold(1, m, m)
    assert int((groups != 0).sum(-1).max()) <= n


def test_torch_sparse_interop():
    s, _ = random_sparse("csr", (37, 53), {})
    t = s.to_torch()
    assert t.layout == torch.sparse_csr
    assert torch.equal(so.to_sparse(t, "csr").to_dense(), s.to_dense())
    b, _ = random_sparse("bsr", (21, 35), {"blocksize": (3, 5)})
    tb = b.to_torch()
    assert tb.layout == torch.sparse_bsr
    assert torch.equal(so.to_sparse(tb, "bsr").to_dense(), b.to_dense())
    # A torch.sparse_csr tensor asked for as N:M goes through dense.
    p = so.prune(torch.randn(6, 8), "nm", n=2, m=4)
    assert torch.equal(so.to_sparse(p.to_sparse_csr(), "nm", n=2, m=4).to_dense(), p)


def test_to_sparse_rejects_malformed_torch_csr():
    crow = torch.tensor([0, 2, 1, 3])
    col = torch.tensor([0, 1, 2])
    bad = torch.sparse_csr_tensor(crow, col, torch.ones(3), (3, 4), check_invariants=False)
    with pytest.raises(ValueError, match="crow_indices"):
        so.to_sparse(bad, "csr")
    bad = torch.sparse_csr_tensor(torch.tensor([0, 1, 2, 3]), torch.tensor([0, 9, 1]),
                                  torch.ones(3), (3, 4), check_invariants=False)
    with pytest.raises(ValueError, match="col_indices"):
        so.to_sparse(bad, "csr")


def test_csr_validation_errors():
    v = torch.ones(3)
    with pytest.raises(ValueError, match="crow_indices: not non-decreasing"):
        so.CSRMatrix(torch.tensor([0, 2, 1, 3]), torch.tensor([0, 1, 2]), v, (3, 4))
    with pytest.raises(ValueError, match="crow_indices: last entry"):
        so.CSRMatrix(torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 2]), v, (3, 4))
    with pytest.raises(ValueError, match="crow_indices: expected length"):
        so.CSRMatrix(torch.tensor([0, 3]), torch.tensor([0, 1, 2]), v, (3, 4))
    with pytest.raises(ValueError, match="col_indices: value 4"):
        so.CSRMatrix(torch.tensor([0, 1, 2, 3]), torch.tensor([0, 4, 2]), v, (3, 4))
    with pytest.raises(ValueError, match="col_indices: value -1"):
        so.CSRMatrix(torch.tensor([0, 1, 2, 3]), torch.tensor([0, -1, 2]), v, (3, 4))
    with pytest.raises(TypeError, match="col_indices"):
        so.CSRMatrix(torch.tensor([0, 1, 2, 3]), torch.tensor([0.0, 1, 2]), v, (3, 4))
    with pytest.raises(TypeError, match="values"):
        so.CSRMatrix(torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 2]),
                     torch.ones(3, dtype=torch.int32), (3, 4))


def test_bsr_validation_errors():
    with pytest.raises(ValueError, match="blocksize.*does not divide"):
        so.to_sparse(torch.randn(10, 12), "bsr", blocksize=(3, 4))
    with pytest.raises(ValueError, match="blocksize.*does not divide"):
        so.prune(torch.randn(10, 12), "bsr", density=0.5, blocksize=(4, 4))
    with pytest.raises(TypeError, match="blocksize"):
        so.to_sparse(torch.randn(10, 12), "bsr", blocksize=4)
    with pytest.raises(ValueError, match="col_indices: block column 3"):
        so.BSRMatrix(torch.tensor([0, 1]), torch.tensor([3]), torch.ones(1, 2, 4), (2, 12))


def test_nm_validation_errors():
    w = torch.ones(2, 8)
    with pytest.raises(ValueError, match="more than n=2"):
        so.to_sparse(w, "nm", n=2, m=4)
    with pytest.raises(ValueError, match="n, m"):
        so.to_sparse(w, "nm", n=4, m=4)
    with pytest.raises(ValueError, match="n, m"):
        so.prune(w, "nm", n=2, m=17)
    s = so.to_sparse(so.prune(torch.randn(2, 6), "nm", n=2, m=4), "nm", n=2, m=4)
    meta = s.metadata.clone()
    meta[0, -1] = 0xFF  # group 1 is partial (columns 4, 5): position 3 gives column 7
    with pytest.raises(ValueError, match="metadata: slot"):
        so.NMMatrix(s.values, meta, (2, 6), 2, 4)
    with pytest.raises(ValueError, match="values: expected shape"):
        so.NMMatrix(s.values[:, :3], s.metadata, (2, 6), 2, 4)
    with pytest.raises(TypeError, match="metadata"):
        so.NMMatrix(s.values, s.metadata.int(), (2, 6), 2, 4)


def test_empty_matrices():
    for layout, kw in [("csr", {}), ("bsr", {"blocksize": (2, 2)}), ("nm", {"n": 2, "m": 4})]:
        s = so.to_sparse(torch.zeros(4, 6), layout, **kw)
        assert torch.equal(s.to_dense(), torch.zeros(4, 6))
        s0 = so.to_sparse(torch.zeros(0, 6), layout, **kw)
        assert s0.shape == (0, 6) and s0.nnz == 0


def test_to_device_and_dtype():
    s, _ = random_sparse("nm", (7, 9), {"n": 2, "m": 4})
    d = s.to("cpu", dtype=torch.float64)
    assert d.dtype == torch.float64 and d.metadata.dtype == torch.uint8
    assert torch.equal(d.to_dense(), s.to_dense().double())


@pytest.mark.parametrize("layout,kw", [("csr", {}), ("bsr", {"blocksize": (2, 3)}),
                                       ("nm", {"n": 2, "m": 4}), ("bitmap", {})])
def test_to_dtype_positional_casts_values_only(layout, kw):
    # As Tensor.to(dtype): the dtype may come first; the indices keep their dtypes.
    s, _ = random_sparse(layout, (6, 9), kw)
    b = s.to(torch.bfloat16)
    assert b.dtype == torch.bfloat16
    for name in s.tensor_names:
        if name != "values":
            assert getattr(b, name).dtype == getattr(s, name).dtype, name
    assert torch.equal(b.to_dense(), s.to_dense().to(torch.bfloat16))
    with pytest.raises(TypeError, match="dtype"):
        s.to(torch.float64, dtype=torch.float32)
    with pytest.raises(TypeError, match="dtype"):
        s.to("cpu", dtype="float64")


def test_to_sparse_bad_arguments():
    with pytest.raises(ValueError, match="layout"):
        so.to_sparse(torch.ones(2, 2), "coo")
    with pytest.raises(TypeError, match="tensor"):
        so.to_sparse([[1.0]], "csr")
    with pytest.raises(ValueError, match="dense: expected a 2-D"):
        so.to_sparse(torch.ones(2, 2, 2), "csr")
