"""Random sparse matrices as the plain tensors of docs/formats.md, and their float64 dense twins.

Built straight from the format description (not through ``sparse_ops``) so the kernels are
checked against an independent reading of the layout. Every call draws a fresh seed; tests put
it in their failure messages.
"""

import os

import numpy as np
import pytest
import torch

from sparse_ops.kernels.autotune import INTERPRET

# Under the interpreter the kernels run on CPU tensors; otherwise they need a GPU.
DEVICE = "cpu" if INTERPRET or not torch.cuda.is_available() else "cuda"

requires_triton_backend = pytest.mark.skipif(
    not INTERPRET and not torch.cuda.is_available(),
    reason="Triton kernels need CUDA, or TRITON_INTERPRET=1 set before triton is imported",
)

# Norm-wise relative error bounds against float64. fp32 under the interpreter is exact numpy
# fp32; on a GPU the kernels keep fp32 unless torch allows TF32 (then ~1e-3).
TOLERANCE = {
    torch.float64: 1e-12,
    torch.float32: 1e-5,
    torch.float16: 5e-3,
    torch.bfloat16: 3e-2,
}


def fresh_seed() -> int:
    return int.from_bytes(os.urandom(4), "little")


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.double().cpu(), want.double().cpu()
    denom = want.norm().item()
    return (got - want).norm().item() / (denom if denom > 0 else 1.0)


def randn(g: torch.Generator, *shape, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype).to(DEVICE)


def random_csr(g, m, k, density=0.2, dtype=torch.float32, col_dtype=torch.int16, empty_rows=2):
    """CSR parts of a random ``(m, k)`` matrix; a few rows are empty, one row is long, and the
    columns inside a row are shuffled (the kernels must not rely on order)."""
    lengths = torch.binomial(torch.full((m,), float(k)), torch.full((m,), density), generator=g)
    lengths = lengths.long()
    if m > 0:
        lengths[torch.randperm(m, generator=g)[:empty_rows]] = 0
        lengths[torch.randint(m, (1,), generator=g)] = k  # a full row: load imbalance
    cols = [torch.randperm(k, generator=g)[: int(n)] for n in lengths]
    crow = torch.zeros(m + 1, dtype=torch.int32)
    crow[1:] = torch.cumsum(lengths, 0)
    col = torch.cat(cols) if cols else torch.zeros(0, dtype=torch.int64)
    nnz = int(crow[-1])
    values = torch.randn(nnz, generator=g, dtype=torch.float64).to(dtype)
    return crow.to(DEVICE), col.to(col_dtype).to(DEVICE), values.to(DEVICE)


def csr_dense(crow, col, values, k) -> torch.Tensor:
    crow, col, values = crow.cpu().numpy(), col.cpu().numpy(), values.cpu().double().numpy()
    out = np.zeros((len(crow) - 1, k))
    for i in range(len(crow) - 1):
        for p in range(crow[i], crow[i + 1]):
            out[i, col[p]] += values[p]
    return torch.from_numpy(out)


def random_bsr(g, mb, kb, r, c, density=0.4, dtype=torch.float32, empty_rows=1):
    """BSR parts of a random ``(mb*r, kb*c)`` matrix of ``r x c`` blocks."""
    mask = torch.rand(mb, kb, generator=g) < density
    if mb > 0:
        mask[torch.randperm(mb, generator=g)[:empty_rows]] = False
    crow = torch.zeros(mb + 1, dtype=torch.int32)
    crow[1:] = torch.cumsum(mask.sum(1), 0)
    col = torch.cat([torch.nonzero(row).flatten() for row in mask]) if mb else torch.zeros(0)
    nnzb = int(crow[-1])
    values = torch.randn(nnzb, r, c, generator=g, dtype=torch.float64).to(dtype)
    return crow.to(DEVICE), col.to(torch.int32).to(DEVICE), values.to(DEVICE)


def bsr_dense(crow, col, values, kb) -> torch.Tensor:
    crow, col, values = crow.cpu().numpy(), col.cpu().numpy(), values.cpu().double().numpy()
    _, r, c = values.shape
    out = np.zeros(((len(crow) - 1) * r, kb * c))
    for i in range(len(crow) - 1):
        for p in range(crow[i], crow[i + 1]):
            out[i * r : (i + 1) * r, col[p] * c : (col[p] + 1) * c] += values[p]
    return torch.from_numpy(out)


def metadata_bits(m: int) -> int:
    return 1 if m == 2 else 2 if m <= 4 else 4


def random_nm(g, rows, k, n, m, dtype=torch.float32):
    """Packed ``n:m`` parts of a random ``(rows, k)`` matrix.

    Slots are filled as a pruner might leave them: in each group a random number (0..n) of
    slots are used, at distinct positions in random order; unused slots hold 0 at a random
    in-range position, which may repeat a used one. The last group may be partial.
    """
    groups = -(-k // m)
    bits = metadata_bits(m)
    values = np.zeros((rows, groups * n))
    pos = np.zeros((rows, groups * n), dtype=np.int64)
    rng = np.random.default_rng(int(torch.randint(2**31, (1,), generator=g)))
    for i in range(rows):
        for gi in range(groups):
            width = min(m, k - gi * m)
            used = rng.integers(0, min(n, width) + 1)
            chosen = rng.permutation(width)[:used]
            for s in range(n):
                if s < used:
                    pos[i, gi * n + s] = chosen[s]
                    values[i, gi * n + s] = rng.standard_normal()
                else:
                    pos[i, gi * n + s] = rng.integers(0, width)
    meta = np.zeros((rows, -(-groups * n * bits // 8)), dtype=np.uint8)
    for i in range(rows):
        for slot in range(groups * n):
            o = slot * bits
            meta[i, o // 8] |= np.uint8(pos[i, slot] << (o % 8))
    values_t = torch.from_numpy(values).to(dtype).to(DEVICE)
    return values_t, torch.from_numpy(meta).to(DEVICE)


def nm_columns(metadata, n, m, groups) -> torch.Tensor:
    """Column of every slot, ``(rows, groups * n)``, decoded from the packed metadata."""
    meta = metadata.cpu().numpy().astype(np.int64)
    bits = metadata_bits(m)
    slot = np.arange(groups * n)
    o = slot * bits
    pos = (meta[:, o // 8] >> (o % 8)) & ((1 << bits) - 1)
    return torch.from_numpy((slot // n) * m + pos)


def nm_dense(values, metadata, n, m, k) -> torch.Tensor:
    rows, slots = values.shape
    cols = nm_columns(metadata, n, m, slots // n).numpy()
    vals = values.cpu().double().numpy()
    out = np.zeros((rows, k))
    for i in range(rows):
        for s in range(slots):
            out[i, cols[i, s]] += vals[i, s]
    return torch.from_numpy(out)


def bitmap_pack(mask: torch.Tensor) -> torch.Tensor:
    """uint8 ``(M, 8 * ceil(K / 64))`` bitmap of a bool ``(M, K)`` mask: columns padded to whole
    64-bit words, bit ``j % 8`` of byte ``j // 8`` for column ``j``, least significant first."""
    m, k = mask.shape
    w = 8 * -(-k // 64)
    padded = torch.zeros(m, w * 8, dtype=torch.bool)
    padded[:, :k] = mask.cpu()
    shifts = torch.arange(8, dtype=torch.uint8)
    return (padded.view(m, w, 8).to(torch.uint8) << shifts).sum(-1, dtype=torch.uint8)


def random_bitmap(g, m, k, density=0.3, dtype=torch.float32, empty_rows=1, full_rows=1):
    """Bitmap parts ``(row_offsets, bitmap, values)`` of a random ``(m, k)`` matrix: each entry
    stored with probability ``density``, ``empty_rows`` rows with none and then ``full_rows``
    rows with every column stored (distinct rows, as far as ``m`` allows)."""
    mask = torch.rand(m, k, generator=g) < density
    rows = torch.randperm(m, generator=g)
    mask[rows[:empty_rows]] = False
    mask[rows[empty_rows : empty_rows + full_rows]] = True
    dense = torch.randn(m, k, generator=g, dtype=torch.float64)
    row_offsets = torch.zeros(m + 1, dtype=torch.int32)
    row_offsets[1:] = torch.cumsum(mask.sum(1), 0)
    values = dense[mask].to(dtype)  # row-major: increasing columns within a row
    return row_offsets.to(DEVICE), bitmap_pack(mask).to(DEVICE), values.to(DEVICE)


def bitmap_columns(row_offsets, bitmap, k) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column of every stored entry, in the order of ``values``, decoded from the bitmap
    (numpy's little-endian ``unpackbits``, independent of the kernels' reading)."""
    bits = np.unpackbits(bitmap.cpu().numpy(), axis=1, bitorder="little")[:, :k]
    rows, cols = np.nonzero(bits)  # row-major order
    counts = np.diff(row_offsets.cpu().numpy())
    assert (np.bincount(rows, minlength=len(counts)) == counts).all(), "inconsistent bitmap"
    return torch.from_numpy(rows), torch.from_numpy(cols)


def bitmap_dense(row_offsets, bitmap, values, k) -> torch.Tensor:
    rows, cols = bitmap_columns(row_offsets, bitmap, k)
    out = torch.zeros(bitmap.shape[0], k, dtype=torch.float64)
    out[rows, cols] = values.cpu().double()
    return out
