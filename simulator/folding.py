"""Folding a GEMM onto the array: the fold table of the fast engine, in closed form.

A GEMM ``X (M x K) @ W (K x N)`` is mapped as in SCALE-Sim:

======== ============== ============== ================ ===============================
dataflow array rows    array columns  streamed (T)     fold length (cycles)
======== ============== ============== ================ ===============================
``os``   M (outputs)    N (outputs)    K                R + C + T - 2
``ws``   K (weights)    N (weights)    M                2R + C + T - 2  (R to load W)
``is``   K (inputs)     M (inputs)     N                2R + C + T - 2  (R to load X)
======== ============== ============== ================ ===============================

Folds run column-fold outer, row-fold inner (SCALE-Sim's order); a partly filled fold still
takes the full length (the skew of the whole array). Sparsity changes what a fold holds and
how long its stream is (see README.md, "Sparsity"); everything here is vectorised over folds.
Facts of the weight pattern that no architecture changes (nonzero counts, lane orders,
nonzero lists) come from a ``pattern.WeightPattern``, computed once and reused by a sweep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .arch import Arch
from .layout import metadata_words
from .pattern import WeightPattern, lane_order, pattern_of
from .sparsity import nm_slots

__all__ = ["FoldTable", "build_fold_table", "build_sddmm_table", "index_bits", "lane_order",
           "tile_extents"]

I64 = np.int64


@dataclass
class FoldTable:
    """Per-fold quantities of one GEMM, folds in execution order (arrays of length F).

    Word counts are in words, lengths in cycles. ``*_reads``/``ofmap_writes`` are what the
    array reads from / writes to its SRAM buffers during the fold; ``*_tile`` are ids of the
    operand tiles a fold needs resident (equal ids = same data) and ``*_tile_words`` their
    sizes, used to decide DRAM traffic. ``ofmap_last`` marks the last fold on an output tile.
    """

    rows: int
    cols: int
    length: np.ndarray
    rows_used: np.ndarray
    cols_used: np.ndarray
    ifmap_reads: np.ndarray
    filter_reads: np.ndarray
    meta_reads: np.ndarray
    ofmap_writes: np.ndarray
    ofmap_reads: np.ndarray
    ifmap_tile: np.ndarray
    ifmap_tile_words: np.ndarray
    filter_tile: np.ndarray
    filter_tile_words: np.ndarray
    meta_tile_words: np.ndarray
    ofmap_tile: np.ndarray
    ofmap_tile_words: np.ndarray
    ofmap_last: np.ndarray
    performed_macs: int
    useful_macs: int

    @property
    def folds(self) -> int:
        return int(self.length.size)

    def compute_cycles(self) -> int:
        """SCALE-Sim's compute cycles: the index of the last busy cycle, counting from 0."""
        return max(int(self.length.sum()) - 1, 0)

    def mapping_efficiency(self) -> float:
        """Mean over executed folds of mapped PEs / all PEs (SCALE-Sim's definition)."""
        active = self.length > 0
        if not active.any():
            return 0.0
        used = (self.rows_used[active] * self.cols_used[active]).astype(float)
        return float(used.sum() / (active.sum() * self.rows * self.cols))


def tile_extents(total: int, size: int) -> np.ndarray:
    """Extents of the tiles that cover ``total`` in steps of ``size`` (last one may be short)."""
    if total <= 0:
        return np.zeros(0, dtype=I64)
    q, r = divmod(total, size)
    ext = np.full(q + (r > 0), size, dtype=I64)
    if r:
        ext[-1] = r
    return ext


def _words(bits: np.ndarray | int, word_bits: int) -> np.ndarray:
    """Whole words needed to hold ``bits`` bits."""
    return -(-np.asarray(bits, dtype=I64) // word_bits)


def index_bits(length: int) -> int:
    """Bits of an index into ``length`` positions (at least 1)."""
    return max(1, math.ceil(math.log2(length))) if length > 1 else 1


def build_fold_table(arch: Arch, M: int, K: int, N: int,
                     mask: np.ndarray | WeightPattern | None) -> FoldTable:
    """The fold table of ``X (M x K) @ W (K x N)`` on ``arch``.

    ``mask`` is the ``K x N`` nonzero pattern of W (a bool array, or a ``WeightPattern`` to
    reuse what was derived from it before), or ``None`` for a dense W (and, in ``"nm"``
    mode, for exactly n nonzeros in every group of m).
    """
    mode = arch.sparsity
    if mode in ("block", "unstructured") and mask is None:
        mask = np.ones((K, N), dtype=bool)
    mask = pattern_of(mask)
    if mask is not None and (mask.K, mask.N) != (K, N):
        raise ValueError(f"weight pattern is {mask.K} x {mask.N}, the GEMM needs K x N = "
                         f"{K} x {N}")
    if arch.dataflow == "os":
        return _os(arch, M, K, N, mask)
    if arch.dataflow == "ws":
        return _ws(arch, M, K, N, mask)
    return _is(arch, M, K, N, mask)


# ---------------------------------------------------------------------------------------
# Per column tile quantities for a weight K x N whose N side is tiled by the array columns
# (OS and WS). Returned per column tile (in the lane order).


def _col_nnz(arch: Arch, pat: WeightPattern | None) -> np.ndarray | None:
    """Nonzeros per column of W in the order the columns are folded (lane order)."""
    if pat is None:
        return None
    if arch.sparsity == "unstructured":
        return pat.col_nnz[pat.col_order(arch.balance)]
    return pat.col_nnz


def _nm_group_extent(start: np.ndarray, stop: np.ndarray, K: int, n: int, m: int) -> np.ndarray:
    """Original K rows spanned by the compressed slots [start, stop) of an n:m column."""
    g0 = start // n
    g1 = (stop - 1) // n
    return np.minimum(K, (g1 + 1) * m) - g0 * m


def _os(arch: Arch, M: int, K: int, N: int, pat: WeightPattern | None) -> FoldTable:
    R, C, wb = arch.rows, arch.cols, arch.word_bits
    mode = arch.sparsity
    cu = tile_extents(N, C)
    ru = tile_extents(M, R)
    n_c, n_r = cu.size, ru.size
    starts = np.arange(n_c, dtype=I64) * C
    col_nnz = _col_nnz(arch, pat)
    if col_nnz is not None:
        tile_nnz = np.add.reduceat(col_nnz, starts)
    else:
        tile_nnz = None

    if mode == "dense":
        T = np.full(n_c, K, dtype=I64)
        kread = T.copy()
        fwords = K * cu
        mwords = np.zeros(n_c, dtype=I64)
        slots = cu * K
        nnz = tile_nnz if tile_nnz is not None else cu * K
    elif mode == "nm":
        n, m = arch.nm
        kc = nm_slots(K, n, m)
        T = np.full(n_c, kc, dtype=I64)
        kread = np.full(n_c, K, dtype=I64)
        fwords = kc * cu
        mwords = _words(kc * cu * index_bits(m) if m > 1 else 0, wb) * np.ones(n_c, I64)
        slots = cu * kc
        nnz = tile_nnz if tile_nnz is not None else cu * kc
    elif mode == "block":
        bk, bn = arch.block
        bmask = pat.block(bk, bn)
        kext = tile_extents(K, bk)
        nb_of_col = np.arange(N) // bn
        # block rows used by any column of each tile, and stored words per tile
        first_nb = nb_of_col[starts]
        last_nb = nb_of_col[np.minimum(starts + cu - 1, N - 1)]
        U = np.zeros((kext.size, n_c), dtype=bool)
        nblocks = np.zeros(n_c, dtype=I64)
        fwords = np.zeros(n_c, dtype=I64)
        cols_in_block = np.zeros((n_c, bmask.shape[1]), dtype=I64)
        np.add.at(cols_in_block, (np.repeat(np.arange(n_c), cu), nb_of_col), 1)
        for t in range(n_c):
            sub = bmask[:, first_nb[t]:last_nb[t] + 1]
            U[:, t] = sub.any(axis=1)
            nblocks[t] = sub.sum()
            fwords[t] = int((kext[:, None] * sub * cols_in_block[t, first_nb[t]:last_nb[t] + 1]
                             ).sum())
        T = (kext[:, None] * U).sum(axis=0).astype(I64)
        kread = T.copy()
        mwords = nblocks + kext.size + 1
        slots = cu * T
        nnz = tile_nnz
    else:  # unstructured: each PE column streams only its own nonzeros
        tile_max = np.maximum.reduceat(col_nnz, starts)
        T = tile_max.astype(I64)
        kread = pat.tile_rows_touched(C, arch.balance)
        fwords = tile_nnz
        mwords = metadata_words(arch.layout, nnz=tile_nnz, positions=K * cu, lanes=cu,
                                index_bits=index_bits(K), word_bits=wb)
        slots = tile_nnz
        nnz = tile_nnz

    length_c = np.where(T > 0, R + C - 2 + T, 0).astype(I64)
    # folds: column tile outer, row tile inner
    fc = np.repeat(np.arange(n_c), n_r)
    fr = np.tile(np.arange(n_r), n_c)
    rr = ru[fr]
    active = length_c[fc] > 0
    return FoldTable(
        rows=R, cols=C,
        length=length_c[fc],
        rows_used=rr, cols_used=cu[fc],
        ifmap_reads=rr * kread[fc] * active,
        filter_reads=fwords[fc] * active,
        meta_reads=mwords[fc] * active,
        ofmap_writes=rr * cu[fc],
        ofmap_reads=np.zeros(fc.size, dtype=I64),
        ifmap_tile=fr.astype(I64), ifmap_tile_words=rr * K * active,
        filter_tile=fc.astype(I64), filter_tile_words=fwords[fc] * active,
        meta_tile_words=mwords[fc] * active,
        ofmap_tile=np.arange(fc.size, dtype=I64), ofmap_tile_words=rr * cu[fc],
        ofmap_last=np.ones(fc.size, dtype=bool),
        performed_macs=int(M * slots.sum()),
        useful_macs=int(M * nnz.sum()),
    )


def _ws(arch: Arch, M: int, K: int, N: int, pat: WeightPattern | None) -> FoldTable:
    R, C, wb = arch.rows, arch.cols, arch.word_bits
    mode = arch.sparsity
    cu = tile_extents(N, C)
    n_c = cu.size
    starts = np.arange(n_c, dtype=I64) * C
    fixed = 2 * R + C - 2 + M
    useful = int(M * pat.nnz) if pat is not None else None

    if mode in ("dense", "nm"):
        if mode == "dense":
            kx = K
            slots_total = K * N
        else:
            n, m = arch.nm
            kx = nm_slots(K, n, m)
            slots_total = kx * N
        rk = tile_extents(kx, R)
        n_r = rk.size
        fc = np.repeat(np.arange(n_c), n_r)
        fr = np.tile(np.arange(n_r), n_c)
        rr, cc = rk[fr], cu[fc]
        row0 = fr * R
        if mode == "nm":
            n, m = arch.nm
            inputs = _nm_group_extent(row0, row0 + rr, K, n, m)
            mwords = _words(rr * cc * (index_bits(m) if m > 1 else 0), wb)
        else:
            inputs = rr
            mwords = np.zeros(fc.size, dtype=I64)
        fwords = rr * cc
        length = np.full(fc.size, fixed, dtype=I64)
        ifmap_tile = fr.astype(I64)
        performed = M * slots_total
        if useful is None:
            useful = performed
    else:
        if mode == "block":
            bk, bn = arch.block
            bmask = pat.block(bk, bn)
            kext = tile_extents(K, bk)
            nb_of_col = np.arange(N) // bn
            kb_n = kext.size
            # nonzero blocks seen by each column, per block row: (kb, N)
            col_block = bmask[:, nb_of_col]
            per_tile_cols = np.add.reduceat(col_block.astype(I64), starts, axis=1)  # (kb, n_c)
            per_tile_blocks = np.zeros((kb_n, n_c), dtype=I64)
            for t in range(n_c):
                nb0, nb1 = nb_of_col[starts[t]], nb_of_col[starts[t] + cu[t] - 1]
                per_tile_blocks[:, t] = bmask[:, nb0:nb1 + 1].sum(axis=1)
            used = per_tile_cols > 0  # (kb, n_c)
            kx_c = (kext[:, None] * used).sum(axis=0).astype(I64)
            # compacted rows of each tile, tile-major: entries are (tile, block row)
            t_idx, kb_idx = np.nonzero(used.T)
            rep = kext[kb_idx]
            row_tile = np.repeat(t_idx, rep)
            row_kb = np.repeat(kb_idx, rep)
            row_words = per_tile_cols[row_kb, row_tile]
        else:  # unstructured: each PE column packs its own nonzeros down the rows
            col_nnz = _col_nnz(arch, pat)
            kx_c = np.maximum.reduceat(col_nnz, starts).astype(I64)
        n_r_c = np.maximum(1, -(-kx_c // R))  # an all-zero tile still writes its zeros
        F = int(n_r_c.sum())
        fc = np.repeat(np.arange(n_c), n_r_c)
        first = np.repeat(np.cumsum(n_r_c) - n_r_c, n_r_c)
        fr = np.arange(F) - first
        row0 = fr * R
        rr = np.clip(kx_c[fc] - row0, 0, R)
        cc = cu[fc]
        length = np.where(rr > 0, fixed, 0).astype(I64)
        gid = np.arange(F)
        if mode == "block":
            tile_base = np.cumsum(kx_c) - kx_c
            pos = np.arange(row_tile.size) - tile_base[row_tile]
            row_fold = np.cumsum(n_r_c)[row_tile] - n_r_c[row_tile] + pos // R
            fwords = np.bincount(row_fold, weights=row_words, minlength=F).astype(I64)
            inputs = rr
            # one index word per (block row, nonzero block) a fold touches, plus a pointer
            key = row_fold * (kb_n + 1) + row_kb
            firsts = np.r_[True, key[1:] != key[:-1]] if key.size else key.astype(bool)
            blocks_touched = np.bincount(row_fold[firsts],
                                         weights=per_tile_blocks[row_kb[firsts],
                                                                 row_tile[firsts]],
                                         minlength=F).astype(I64)
            rows_touched = np.bincount(row_fold[firsts], minlength=F).astype(I64)
            mwords = blocks_touched + rows_touched + (rr > 0)
            performed = int(M * (rr * cc).sum())
        else:
            # a lane of c nonzeros fills R rows of each of its first c // R row folds (a
            # difference array over folds) and c % R rows of the next one
            fold_base = np.cumsum(n_r_c) - n_r_c
            lane_base = np.repeat(fold_base, cu)
            full, rest = np.divmod(col_nnz, R)
            diff = (np.bincount(lane_base, minlength=F + 1)
                    - np.bincount(lane_base + full, minlength=F + 1)) * R
            fwords = (np.cumsum(diff[:F])
                      + np.bincount(lane_base + full, weights=rest, minlength=F + 1)[:F]
                      ).astype(I64)
            inputs = pat.ws_fold_inputs(R, C, arch.balance, fold_base, F)
            positions = (pat.ws_fold_bitmap_bits(R, C, arch.balance, fold_base, F)
                         if arch.layout == "bitmap" else 0)
            mwords = metadata_words(arch.layout, nnz=fwords, positions=positions,
                                    lanes=cc, index_bits=index_bits(K), word_bits=wb)
            performed = int(M * fwords.sum())
        ifmap_tile = gid.astype(I64)

    active = length > 0
    prev_same = np.r_[False, fc[1:] == fc[:-1]]
    return FoldTable(
        rows=R, cols=C,
        length=length,
        rows_used=rr.astype(I64), cols_used=cc.astype(I64),
        ifmap_reads=M * inputs * active,
        filter_reads=fwords * active,
        meta_reads=mwords * active,
        ofmap_writes=np.where(active | ~prev_same, M * cc, 0),
        ofmap_reads=np.where(active & prev_same, M * cc, 0),
        ifmap_tile=ifmap_tile, ifmap_tile_words=M * inputs * active,
        filter_tile=np.arange(fc.size, dtype=I64), filter_tile_words=fwords * active,
        meta_tile_words=mwords * active,
        ofmap_tile=fc.astype(I64), ofmap_tile_words=M * cc,
        ofmap_last=np.r_[fc[1:] != fc[:-1], True],
        performed_macs=int(performed),
        useful_macs=int(useful),
    )


def _is(arch: Arch, M: int, K: int, N: int, pat: WeightPattern | None) -> FoldTable:
    R, C, wb = arch.rows, arch.cols, arch.word_bits
    mode = arch.sparsity
    cm = tile_extents(M, C)  # array columns hold M
    n_c = cm.size
    useful_per_m = pat.nnz if pat is not None else None
    if mode == "nm":
        n, m = arch.nm
        kx = nm_slots(K, n, m)
    else:
        kx = K
    rk = tile_extents(kx, R)
    n_r = rk.size
    starts = np.arange(n_r, dtype=I64) * R

    if mode == "dense":
        T = np.full(n_r, N, dtype=I64)
        inputs = rk
        fwords = rk * N
        mwords = np.zeros(n_r, dtype=I64)
        slots = rk * N
        ptouch = np.full(n_r, N, dtype=I64)
    elif mode == "nm":
        T = np.full(n_r, N, dtype=I64)
        inputs = _nm_group_extent(starts, starts + rk, K, n, m)
        fwords = rk * N
        mwords = _words(rk * N * (index_bits(m) if m > 1 else 0), wb)
        slots = rk * N
        ptouch = np.full(n_r, N, dtype=I64)
    elif mode == "block":
        bk, bn = arch.block
        bmask = pat.block(bk, bn)
        next_ = tile_extents(N, bn)
        kb_of_row = np.arange(K) // bk
        row_blocks = bmask[kb_of_row]  # (K, nb): blocks seen by each row of W
        U = np.logical_or.reduceat(row_blocks, starts, axis=0)  # (n_r, nb)
        T = (U * next_[None, :]).sum(axis=1).astype(I64)
        fwords = np.add.reduceat((row_blocks * next_[None, :]).sum(axis=1).astype(I64), starts)
        tb = np.zeros(n_r, dtype=I64)
        for t in range(n_r):
            kb0, kb1 = kb_of_row[starts[t]], kb_of_row[starts[t] + rk[t] - 1]
            tb[t] = bmask[kb0:kb1 + 1].sum()
        mwords = tb + 1
        inputs = rk
        slots = rk * T
        ptouch = T
    else:  # unstructured: lanes are PE rows, a row streams the nonzeros of W[k, :]
        row_nnz = pat.row_nnz[pat.row_order(arch.balance)]
        T = np.maximum.reduceat(row_nnz, starts).astype(I64)
        fwords = np.add.reduceat(row_nnz, starts)
        mwords = metadata_words(arch.layout, nnz=fwords, positions=rk * N, lanes=rk,
                                index_bits=index_bits(N), word_bits=wb)
        inputs = rk
        slots = fwords
        ptouch = pat.tile_cols_touched(R, arch.balance)

    length_r = np.where(T > 0, 2 * R + C - 2 + T, 0).astype(I64)
    fc = np.repeat(np.arange(n_c), n_r)
    fr = np.tile(np.arange(n_r), n_c)
    cc = cm[fc]
    active = length_r[fr] > 0
    # a fold after an earlier active fold on the same output tile reads partial sums back
    act2 = active.reshape(n_c, n_r)
    seen_before = (np.cumsum(act2, axis=1) - act2).reshape(-1) > 0
    writes = cc * ptouch[fr] * active
    if useful_per_m is None:
        useful_per_m = int(slots.sum())
    return FoldTable(
        rows=R, cols=C,
        length=length_r[fr],
        rows_used=rk[fr], cols_used=cc,
        ifmap_reads=inputs[fr] * cc * active,
        filter_reads=fwords[fr] * active,
        meta_reads=mwords[fr] * active,
        ofmap_writes=writes,
        ofmap_reads=np.where(seen_before, writes, 0),
        ifmap_tile=np.arange(fc.size, dtype=I64), ifmap_tile_words=inputs[fr] * cc * active,
        filter_tile=fr.astype(I64), filter_tile_words=fwords[fr] * active,
        meta_tile_words=mwords[fr] * active,
        ofmap_tile=fc.astype(I64), ofmap_tile_words=N * cc,
        ofmap_last=np.r_[fc[1:] != fc[:-1], True],
        performed_macs=int(M * slots.sum()),
        useful_macs=int(M * useful_per_m),
    )


def build_sddmm_table(arch: Arch, M: int, K: int, N: int, out_mask: np.ndarray) -> FoldTable:
    """Fold table of a sampled dense-dense product ``(A (M x K) @ B (K x N)) * out_mask``.

    ``B`` takes the weight's place. A ``"dense"`` array computes every output and keeps the
    sampled ones (MACs on unsampled outputs are gated). Any sparse mode skips work on
    unsampled outputs: in ``os`` a fold whose output tile has no sampled output is skipped
    and PEs whose output is unsampled idle; in ``ws`` (``is``) only the rows of A (columns of
    B) with a sampled output in the fold's tile are streamed. Sampled outputs are written as
    a sparse result (``nnz`` words) by the sparse modes.
    """
    dense = build_fold_table(arch.with_(sparsity="dense"), M, K, N, None)
    useful = int(K * out_mask.sum())
    if arch.sparsity == "dense":
        dense.useful_macs = useful
        return dense
    R, C = arch.rows, arch.cols
    t = dense
    if arch.dataflow == "os":
        r_starts = np.arange(0, M, R)
        c_starts = np.arange(0, N, C)
        nz = np.add.reduceat(np.add.reduceat(out_mask.astype(I64), r_starts, axis=0),
                             c_starts, axis=1)  # (n_r, n_c)
        nz_f = nz.T.reshape(-1)  # column tiles outer
        act = nz_f > 0
        t.length = np.where(act, t.length, 0)
        for name in ("ifmap_reads", "filter_reads", "ifmap_tile_words", "filter_tile_words"):
            setattr(t, name, getattr(t, name) * act)
        t.ofmap_writes = nz_f
        t.ofmap_tile_words = nz_f
    else:
        if arch.dataflow == "ws":  # column tiles over N, stream over M
            starts = np.arange(0, N, C)
            lines = np.logical_or.reduceat(out_mask, starts, axis=1).sum(axis=0)
            nz_t = np.add.reduceat(out_mask.sum(axis=0).astype(I64), starts)
        else:  # column tiles over M, stream over N
            starts = np.arange(0, M, C)
            lines = np.logical_or.reduceat(out_mask, starts, axis=0).sum(axis=1)
            nz_t = np.add.reduceat(out_mask.sum(axis=1).astype(I64), starts)
        n_r = t.folds // starts.size
        fc = np.repeat(np.arange(starts.size), n_r)
        fr = np.tile(np.arange(n_r), starts.size)
        T = lines.astype(I64)[fc]
        act = T > 0
        t.length = np.where(act, 2 * R + C - 2 + T, 0)
        streamed = t.rows_used * T
        # the streamed operand's tile stays the dense K-slice (fetched, and reused, whole);
        # only the lines with a sampled output are read from SRAM into the array
        if arch.dataflow == "ws":
            t.ifmap_reads = streamed
            t.ifmap_tile_words = t.ifmap_tile_words * act
            t.filter_reads = t.filter_reads * act
            t.filter_tile_words = t.filter_tile_words * act
        else:
            t.filter_reads = streamed
            t.filter_tile_words = t.filter_tile_words * act
            t.ifmap_reads = t.ifmap_reads * act
            t.ifmap_tile_words = t.ifmap_tile_words * act
        t.ofmap_writes = nz_t[fc] * act
        t.ofmap_reads = np.where(act & (fr > 0), nz_t[fc], 0)
        t.ofmap_tile_words = nz_t[fc]
    t.performed_macs = useful
    t.useful_macs = useful
    return t
