"""What a weight pattern is, independently of any architecture: computed once, folded often.

A design-space sweep runs the same layers, with the same weight patterns, on many arrays. All
that an array changes is how the lanes (columns or rows of W) are cut into tiles of ``C``
(or ``R``) and how each lane's nonzeros are cut into row folds of ``R``. ``WeightPattern``
holds everything that does not depend on that cut, computed lazily and kept:

* the ``K x N`` mask, its per-column and per-row nonzero counts and the block masks;
* the lane orders (as given, or busiest first for ``Arch(balance=True)``);
* the nonzeros as compact row-major lists under each column order (position of the column
  in the lane order, rank of the nonzero in its column, a flag for the first nonzero of a
  row), and column-major lists under each row order, for the ``is`` dataflow.

The per-architecture questions (``tile_rows_touched``, ``ws_fold_inputs``, ...) are then a few
vectorised passes over those lists, with no sorting and no hashing. Counts are exact: they
equal what the closed-form code derives from the full mask (tested field by field against
the reference engine, ``tests/simulator/test_pattern.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .sparsity import block_mask

I64 = np.int64
# Widest spread of row folds within a row (or a run) counted with the (run, offset) table.
_BITS = 64


def _index_dtype(limit: int) -> type:
    """The smallest unsigned type holding indices below ``limit``."""
    return np.uint16 if limit <= np.iinfo(np.uint16).max else np.uint32


def lane_order(counts: np.ndarray, balance: bool) -> np.ndarray:
    """The order lanes are folded in: as given, or busiest first when balancing.

    Sorting lanes by nonzero count and cutting the sorted list into array-wide tiles minimises
    the sum over tiles of the busiest lane (each tile costs its maximum), which is the
    SparTen-style balancing of ``Arch(balance=True)``.
    """
    if not balance:
        return np.arange(counts.size)
    return np.argsort(-counts, kind="stable")


class WeightPattern:
    """The architecture-independent facts of one ``K x N`` weight pattern (nonzeros = True).

    Args:
        mask: ``K x N`` boolean array (``K`` = reduction dimension, ``N`` = output channels).
    """

    def __init__(self, mask: np.ndarray) -> None:
        mask = np.asarray(mask)
        if mask.ndim != 2:
            raise ValueError(f"a weight pattern must be 2-D (K x N), got shape {mask.shape}")
        self.mask = np.ascontiguousarray(mask, dtype=bool)
        self.K, self.N = (int(x) for x in self.mask.shape)
        self.col_nnz = self.mask.sum(axis=0, dtype=I64)
        self.row_nnz = self.mask.sum(axis=1, dtype=I64)
        self.nnz = int(self.col_nnz.sum())
        self._cache: dict[Any, Any] = {}

    def __repr__(self) -> str:
        return f"WeightPattern(K={self.K}, N={self.N}, nnz={self.nnz})"

    @property
    def nbytes(self) -> int:
        """Bytes held by the mask and every list computed so far."""
        total = self.mask.nbytes + self.col_nnz.nbytes + self.row_nnz.nbytes
        for value in self._cache.values():
            for arr in value if isinstance(value, tuple) else (value,):
                total += getattr(arr, "nbytes", 0)
        return total

    # Cached, architecture-independent pieces ------------------------------------------

    def col_order(self, balance: bool) -> np.ndarray:
        """Lane order of the columns of W (``os``/``ws`` lanes)."""
        key = ("col_order", bool(balance))
        if key not in self._cache:
            self._cache[key] = lane_order(self.col_nnz, balance)
        return self._cache[key]

    def row_order(self, balance: bool) -> np.ndarray:
        """Lane order of the rows of W (``is`` lanes)."""
        key = ("row_order", bool(balance))
        if key not in self._cache:
            self._cache[key] = lane_order(self.row_nnz, balance)
        return self._cache[key]

    def block(self, bk: int, bn: int) -> np.ndarray:
        """``block_mask`` of the pattern for ``bk x bn`` blocks."""
        key = ("block", int(bk), int(bn))
        if key not in self._cache:
            self._cache[key] = block_mask(self.mask, bk, bn)
        return self._cache[key]

    def row_major(self, balance: bool
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Nonzeros row by row, columns in lane order: ``(pos, rank, row_first, row_min)``.

        ``pos``: position of the nonzero's column in ``col_order(balance)`` (ascending within a
        row); ``rank``: how many nonzeros precede it in its column (k ascending);
        ``row_first``: True for the first nonzero of each row; ``row_min``: the smallest rank
        in the nonzero's row (a base that keeps rank differences small).
        """
        key = ("row_major", bool(balance))
        if key not in self._cache:
            order = self.col_order(balance)
            m = self.mask if not balance else self.mask[:, order]
            rows, pos = np.nonzero(m)
            rank = (np.cumsum(m, axis=0, dtype=np.int32) - 1)[rows, pos]
            first = np.ones(rows.size, dtype=bool)
            first[1:] = rows[1:] != rows[:-1]
            starts = np.flatnonzero(first)
            low = np.minimum.reduceat(rank, starts) if rank.size else rank
            row_min = np.repeat(low, np.diff(starts, append=rank.size))
            kdt = _index_dtype(self.K)
            self._cache[key] = (pos.astype(_index_dtype(self.N)), rank.astype(kdt), first,
                                row_min.astype(kdt))
        return self._cache[key]

    def col_major(self, balance: bool) -> tuple[np.ndarray, np.ndarray]:
        """Nonzeros column by column, rows in lane order: ``(pos, col_first)``.

        ``pos``: position of the nonzero's row in ``row_order(balance)`` (ascending within a
        column); ``col_first``: True for the first nonzero of each column.
        """
        key = ("col_major", bool(balance))
        if key not in self._cache:
            order = self.row_order(balance)
            m = self.mask if not balance else self.mask[order]
            cols, pos = np.nonzero(m.T)
            first = np.ones(cols.size, dtype=bool)
            first[1:] = cols[1:] != cols[:-1]
            self._cache[key] = (pos.astype(_index_dtype(self.K)), first)
        return self._cache[key]

    # Per-architecture questions ----------------------------------------------------------

    @staticmethod
    def _groups(pos: np.ndarray, first: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Tile of each listed nonzero (``pos // size``) and the start flags of the runs of
        nonzeros sharing a (line, tile) pair."""
        tile = pos // pos.dtype.type(size) if size <= np.iinfo(pos.dtype).max \
            else np.zeros_like(pos)
        new = first.copy()
        if tile.size > 1:
            new[1:] |= tile[1:] != tile[:-1]
        return tile, new

    def tile_rows_touched(self, C: int, balance: bool) -> np.ndarray:
        """Per tile of ``C`` consecutive columns (lane order): rows k with a nonzero in it.

        The ``os`` ifmap inputs a fold of unstructured sparsity needs (``len = ceil(N / C)``).
        """
        n_c = -(-self.N // C)
        pos, _, first, _ = self.row_major(balance)
        tile, new = self._groups(pos, first, C)
        return np.bincount(tile[new], minlength=n_c).astype(I64)

    def tile_cols_touched(self, R: int, balance: bool) -> np.ndarray:
        """Per tile of ``R`` consecutive rows (lane order): columns n with a nonzero in it.

        The ``is`` output columns a fold of unstructured sparsity touches.
        """
        n_r = -(-self.K // R)
        pos, first = self.col_major(balance)
        tile, new = self._groups(pos, first, R)
        return np.bincount(tile[new], minlength=n_r).astype(I64)

    def ws_fold_inputs(self, R: int, C: int, balance: bool, fold_base: np.ndarray,
                       folds: int) -> np.ndarray:
        """``ws`` unstructured: distinct rows k among the nonzeros of each fold.

        Column tile ``t`` (``C`` lanes) packs each lane's nonzeros down the ``R`` array rows,
        so the nonzero of rank ``r`` in its column lies in fold ``fold_base[t] + r // R``.
        The inputs a fold needs are the distinct k of its nonzeros. Row-major, the nonzeros of
        one row and one tile are contiguous; their row folds differ by little, so each run
        marks its folds in a small table of (run, row fold offset) cells, offsets taken from
        the row's lowest row fold, or else from the run's (an exact fallback handles runs
        spread wider still).
        """
        pos, rank, first, row_min = self.row_major(balance)
        inputs = np.zeros(folds, dtype=I64)
        if pos.size == 0:
            return inputs
        tile, new = self._groups(pos, first, C)
        big = R > np.iinfo(rank.dtype).max
        r = rank.dtype.type(0 if big else R)
        j = np.zeros_like(rank) if big else rank // r
        base = np.zeros_like(rank) if big else row_min // r
        offset = j - base
        span = int(offset.max())
        starts = np.flatnonzero(new)
        if span < _BITS:
            jmin = base[starts]
        else:  # rows spread wide: relative to each run's own lowest row fold
            jmin = np.minimum.reduceat(j, starts)
            offset = j - np.repeat(jmin, np.diff(starts, append=j.size))
            span = int(offset.max())
        gfold = fold_base[tile[starts]] + jmin
        if span >= _BITS:  # exact fallback: distinct (fold, k) pairs
            k = np.repeat(np.arange(self.K, dtype=I64), self.row_nnz)
            fold = fold_base[tile] + j
            key = np.unique(fold.astype(I64) * self.K + k)
            return np.bincount(key // self.K, minlength=folds).astype(I64)
        # mark each (run, offset) cell a nonzero falls in; each marked cell is one input
        width = span + 1
        cell = np.cumsum(new, dtype=np.int64)
        cell -= 1
        cell *= width
        cell += offset
        marks = np.zeros(starts.size * width, dtype=bool)
        marks[cell] = True
        hit = np.flatnonzero(marks)
        run, off = np.divmod(hit, width)
        return np.bincount(gfold[run] + off, minlength=folds).astype(I64)

    def ws_fold_bitmap_bits(self, R: int, C: int, balance: bool, fold_base: np.ndarray,
                            folds: int) -> np.ndarray:
        """``ws`` unstructured, bitmap format: bitmap bits each fold carries.

        Each lane's ``K`` bits are split among its row folds: the fold holding the lane's
        nonzeros of rank ``[f R, (f + 1) R)`` carries the bits from just after the previous
        fold's last nonzero up to its own last one, and the lane's last fold carries the rest
        of the lane (a lane without a nonzero gives all ``K`` to its tile's first fold). The
        folds of a column tile of ``c`` lanes thus carry its ``K x c`` bits exactly once.
        """
        pos, rank, _, _ = self.row_major(balance)
        order = self.col_order(balance)
        lane_nnz = self.col_nnz[order]
        bits = np.zeros(folds + 1, dtype=I64)
        empty = np.flatnonzero(lane_nnz == 0)
        bits += np.bincount(fold_base[empty // C], minlength=folds + 1) * self.K
        if pos.size == 0:
            return bits[:folds]
        lane = pos.astype(I64)
        rk = rank.astype(I64)
        fold = fold_base[lane // C] + rk // R
        last = rk == lane_nnz[lane] - 1
        cut = ((rk + 1) % R == 0) & ~last  # the fold's last nonzero, the lane goes on
        end = np.repeat(np.arange(1, self.K + 1, dtype=I64), self.row_nnz)[cut]  # k + 1
        bits += np.bincount(fold[last], minlength=folds + 1) * self.K
        bits += np.bincount(fold[cut], weights=end, minlength=folds + 1).astype(I64)
        bits -= np.bincount(fold[cut] + 1, weights=end, minlength=folds + 1).astype(I64)
        return bits[:folds]


def pattern_of(mask: np.ndarray | WeightPattern | None) -> WeightPattern | None:
    """``mask`` as a ``WeightPattern`` (``None`` stays ``None``: a dense, closed-form W)."""
    if mask is None or isinstance(mask, WeightPattern):
        return mask
    return WeightPattern(mask)
