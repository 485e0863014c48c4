"""SRAM and DRAM: what moves between them, and the stalls when DRAM cannot keep up.

Buffers. Each operand (ifmap, filter with its metadata, ofmap) has its own SRAM, split in two
halves (double buffering): the running fold uses one half while the next fold's new operand
tiles are loaded into the other, and finished outputs drain from the ofmap's other half.

DRAM traffic (per operand, in words). A fold needs its operand tiles resident. A tile is read
from DRAM unless it is already there: either the previous fold used the same tile and it fits
in half the buffer, or the whole operand fits in half the buffer and was read before. An ofmap
tile that fits in half the ofmap buffer accumulates on chip and is written to DRAM once, after
its last fold; a larger one spills: every fold writes its partial sums and the next one reads
them back.

Timing. One DRAM channel of ``B`` words/cycle, first come first served; a transfer of ``w``
words holds it ``ceil(w / B)`` cycles and a read's data is usable ``latency`` cycles after its
last word. When fold ``f`` starts it issues the read of fold ``f+1``'s new tiles, then the
write of fold ``f-1``'s outputs. Fold ``f`` starts when fold ``f-1`` has ended, its own reads
have arrived and the ofmap half it will write into has drained (fold ``f-2``'s write is done).
The first fold's read is issued at cycle 0 and the last fold's write after it ends. Stall
cycles are the cycles of that timeline in which the array does not compute.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .arch import Arch
from .folding import FoldTable

I64 = np.int64
OPERANDS = ("ifmap", "filter", "metadata", "ofmap")


@dataclass
class Traffic:
    """Word counts per operand at both levels, and the DRAM words each fold moves.

    ``load_words[f]``: DRAM words read for fold ``f`` (before it can start);
    ``write_words[f]``: DRAM words written with fold ``f``'s outputs (after it ends).
    """

    sram_reads: dict[str, int]
    sram_writes: dict[str, int]
    dram_reads: dict[str, int]
    dram_writes: dict[str, int]
    load_words: np.ndarray
    write_words: np.ndarray


def dram_fetches(tile: np.ndarray, words: np.ndarray, half: int) -> np.ndarray:
    """DRAM words read for each fold's operand tile under the residency rule above.

    Args:
        tile: tile id per fold (equal ids hold the same data).
        words: words of the tile per fold (0 when the fold needs none of it).
        half: words in half of the operand's buffer.
    """
    F = tile.size
    w = np.asarray(words, dtype=I64)
    if F == 0:
        return w
    used = w > 0
    if not used.any():
        return np.zeros(F, dtype=I64)
    ids, inverse = np.unique(tile[used], return_inverse=True)
    biggest = np.zeros(ids.size, dtype=I64)
    np.maximum.at(biggest, inverse, w[used])
    if int(biggest.sum()) <= half:
        first = np.zeros(F, dtype=bool)
        _, first_pos = np.unique(inverse, return_index=True)
        first[np.flatnonzero(used)[first_pos]] = True
        return np.where(first, w, 0)
    prev_same = np.r_[False, (tile[1:] == tile[:-1]) & used[:-1]]
    keep = prev_same & (w <= half)
    return np.where(used & ~keep, w, 0)


def traffic(table: FoldTable, arch: Arch) -> Traffic:
    """SRAM and DRAM word counts of a fold table on ``arch``."""
    half_if = arch.sram_words("ifmap") // 2
    half_f = arch.sram_words("filter") // 2
    half_o = arch.sram_words("ofmap") // 2

    if_dram = dram_fetches(table.ifmap_tile, table.ifmap_tile_words, half_if)
    both = table.filter_tile_words + table.meta_tile_words  # metadata lives with its weights
    fetched = dram_fetches(table.filter_tile, both, half_f) > 0
    f_dram = np.where(fetched, table.filter_tile_words, 0)
    m_dram = np.where(fetched, table.meta_tile_words, 0)

    fits = table.ofmap_tile_words <= half_o
    o_write = np.where(fits, np.where(table.ofmap_last, table.ofmap_tile_words, 0),
                       table.ofmap_writes)
    o_read = np.where(fits, 0, table.ofmap_reads)

    s = lambda a: int(np.asarray(a, dtype=I64).sum())  # noqa: E731
    dram_reads = {"ifmap": s(if_dram), "filter": s(f_dram), "metadata": s(m_dram),
                  "ofmap": s(o_read)}
    dram_writes = {"ifmap": 0, "filter": 0, "metadata": 0, "ofmap": s(o_write)}
    sram_reads = {"ifmap": s(table.ifmap_reads), "filter": s(table.filter_reads),
                  "metadata": s(table.meta_reads),
                  "ofmap": s(table.ofmap_reads) + dram_writes["ofmap"]}
    sram_writes = {"ifmap": dram_reads["ifmap"], "filter": dram_reads["filter"],
                   "metadata": dram_reads["metadata"],
                   "ofmap": s(table.ofmap_writes) + dram_reads["ofmap"]}
    return Traffic(sram_reads, sram_writes, dram_reads, dram_writes,
                   load_words=if_dram + f_dram + m_dram + o_read, write_words=o_write)


@dataclass
class Timeline:
    """When the array computes: ``end`` cycles in all, of which ``stall`` without compute.

    ``fill``: cycles before the first fold starts; ``drain``: after the last fold ends;
    ``between``: the rest of the stalls.
    """

    end: int
    stall: int
    fill: int
    between: int
    drain: int


def transfer_cycles(words: int, bandwidth: Fraction) -> int:
    """Cycles a transfer of ``words`` holds the channel: ``ceil(words / bandwidth)``."""
    return -(-(words * bandwidth.denominator) // bandwidth.numerator)


def schedule(length: np.ndarray, load_words: np.ndarray, write_words: np.ndarray,
             bandwidth: Fraction | None, latency: int) -> Timeline:
    """The fold timeline of the double-buffered memory system (see the module docstring)."""
    busy = int(np.asarray(length, dtype=I64).sum())
    F = int(length.size)
    if bandwidth is None or F == 0:
        return Timeline(busy, 0, 0, 0, 0)
    num, den = bandwidth.numerator, bandwidth.denominator
    L = np.asarray(length, dtype=I64).tolist()
    ld = np.asarray(load_words, dtype=I64).tolist()
    wr = np.asarray(write_words, dtype=I64).tolist()
    chan = 0
    avail_next = 0
    if ld[0]:
        chan = -(-(ld[0] * den) // num)
        avail_next = chan + latency
    w_pending = 0  # completion of the write issued by the previous fold (of fold f-2)
    end_prev = 0
    first_start = 0
    for f in range(F):
        start = end_prev
        if avail_next > start:
            start = avail_next
        if w_pending > start:
            start = w_pending
        if f == 0:
            first_start = start
        if f + 1 < F:
            w = ld[f + 1]
            if w:
                chan = (chan if chan > start else start) + -(-(w * den) // num)
                avail_next = chan + latency
            else:
                avail_next = start
        w_pending = 0
        if f >= 1:
            w = wr[f - 1]
            if w:
                chan = (chan if chan > start else start) + -(-(w * den) // num)
                w_pending = chan
        end_prev = start + L[f]
    last_end = end_prev
    w = wr[F - 1]
    if w:
        chan = (chan if chan > last_end else last_end) + -(-(w * den) // num)
    end = max(last_end, chan)
    stall = end - busy
    drain = end - last_end
    return Timeline(end, stall, first_start, stall - first_start - drain, drain)
