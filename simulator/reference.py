"""The reference engine: steps the array and the DRAM channel one cycle at a time.

It re-derives every fold from the weight pattern with plain loops (which weight each PE holds
or streams, which inputs enter the array), then steps cycles: in each cycle a PE is busy when
the stream element ``j = cycle - prefix - r - c`` has reached it and it has a MAC for it, and
the DRAM channel moves up to ``B`` words of the transfer at the head of its queue. It is slow
(cost grows with cycles x PEs) and exists to check the fast engine and to give per-cycle
traces of small problems; both engines give the same totals.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from .arch import Arch
from .energy import EnergyTable, estimate_energy
from .folding import index_bits
from .layout import metadata_words
from .result import Result
from .sparsity import block_mask

MAX_CYCLES = 2_000_000


@dataclass
class Fold:
    """One fold as the reference engine sees it.

    ``performed[r, c, j]``: PE (r, c) does a MAC on stream element j; ``useful``: and its
    weight is nonzero. ``prefix``: cycles spent loading the stationary operand first.
    """

    prefix: int
    stream: int
    performed: np.ndarray
    useful: np.ndarray
    rows_used: int
    cols_used: int
    reads: dict[str, int]
    ofmap_writes: int
    ofmap_reads: int
    tiles: dict[str, tuple[object, int]] = field(default_factory=dict)
    ofmap_tile: object = None
    ofmap_tile_words: int = 0
    ofmap_last: bool = False

    def length(self, R: int, C: int) -> int:
        # the wave of the last stream element leaves PE (R-1, C-1)
        return self.prefix + R + C - 2 + self.stream if self.stream else 0


def _words(bits: int, word_bits: int) -> int:
    return -(-bits // word_bits)


def _nm_columns(mask: np.ndarray, n: int, m: int) -> list[list[int | None]]:
    """Each column of W stored n:m: its slots' k (``None`` for a padding slot)."""
    K, N = mask.shape
    cols = []
    for col in range(N):
        slots: list[int | None] = []
        for g0 in range(0, K, m):
            ks = [k for k in range(g0, min(K, g0 + m)) if mask[k, col]]
            width = min(n, min(K, g0 + m) - g0)
            slots += ks + [None] * (width - len(ks))
        cols.append(slots)
    return cols


def _lane_order(counts: list[int], balance: bool) -> list[int]:
    idx = list(range(len(counts)))
    if balance:
        idx.sort(key=lambda i: -counts[i])  # stable: ties keep their order
    return idx


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _meta(arch: Arch, nnz: int, positions: int, lanes: int, length: int) -> int:
    """Unstructured metadata words of one stored tile in ``arch.layout``; ``length``
    is the extent a CSR index addresses (K, or N in ``is``)."""
    return int(metadata_words(arch.layout, nnz=nnz, positions=positions, lanes=lanes,
                              index_bits=index_bits(length), word_bits=arch.word_bits))


def _ws_bitmap_bits(lanes: list[list[int]], r0: int, R: int, K: int) -> int:
    """Bits of the lanes' bitmaps a ``ws`` row fold holding ranks ``[r0, r0 + R)`` carries:
    from after the previous fold's last nonzero to its own last one (the lane's last fold
    takes the rest of the lane; an empty lane gives its K bits to the first fold)."""
    bits = 0
    for lane in lanes:
        n = len(lane)
        if n == 0:
            bits += K if r0 == 0 else 0
        elif r0 < n:
            start = lane[r0 - 1] + 1 if r0 > 0 else 0
            end = K if r0 + R >= n else lane[r0 + R - 1] + 1
            bits += end - start
    return bits


def plan_folds(arch: Arch, M: int, K: int, N: int, mask: np.ndarray | None) -> list[Fold]:
    """All folds in execution order (column tiles outer, row tiles inner)."""
    R, C, wb = arch.rows, arch.cols, arch.word_bits
    mode = arch.sparsity
    if mask is None:
        mask = np.ones((K, N), dtype=bool)
        nm_ideal = True
    else:
        nm_ideal = False
    n_, m_ = arch.nm
    nm_bits = index_bits(m_) if m_ > 1 else 0
    if mode == "nm":
        if nm_ideal:  # exactly n nonzeros per group: the first n rows of each group
            mask = np.zeros((K, N), dtype=bool)
            for g0 in range(0, K, m_):
                mask[g0:g0 + min(n_, K - g0)] = True
        nm_cols = _nm_columns(mask, n_, m_)
    bk, bn = arch.block
    bmask = block_mask(mask, bk, bn) if mode == "block" else None
    folds: list[Fold] = []
    df = arch.dataflow

    def in_block(k: int, col: int) -> bool:
        return bool(bmask[k // bk, col // bn])

    if df in ("os", "ws"):
        cols = list(range(N))
        if mode == "unstructured":
            cols = [cols[i] for i in _lane_order([int(mask[:, c].sum()) for c in cols],
                                                 arch.balance)]
        col_tiles = _chunks(cols, C)
        for t_idx, tcols in enumerate(col_tiles):
            cu = len(tcols)
            # the weights of each PE column, in the order the column uses them
            if mode == "dense":
                lanes = [list(range(K)) for _ in tcols]
            elif mode == "nm":
                lanes = [nm_cols[col] for col in tcols]
            elif mode == "block":
                rows_used_k = [k for k in range(K) if any(in_block(k, col) for col in tcols)]
                lanes = [list(rows_used_k) for _ in tcols]
            else:
                lanes = [[k for k in range(K) if mask[k, col]] for col in tcols]
            if df == "os":
                _os_folds(folds, arch, M, K, t_idx, tcols, lanes, mask, mode, nm_bits,
                          in_block, bmask)
            else:
                _ws_folds(folds, arch, M, K, t_idx, tcols, lanes, mask, mode, nm_bits,
                          in_block, bmask)
        return folds

    # input stationary: PE rows hold K (or n:m slots), PE columns hold M, W streams over N
    if mode == "nm":
        kx = len(nm_cols[0]) if N else 0
        row_ids: list = list(range(kx))  # slot indices
    else:
        row_ids = list(range(K))
        if mode == "unstructured":
            row_ids = [row_ids[i] for i in _lane_order([int(mask[k].sum()) for k in row_ids],
                                                       arch.balance)]
    row_tiles = _chunks(row_ids, R)
    m_tiles = _chunks(list(range(M)), C)
    for mt_idx, mcols in enumerate(m_tiles):
        cu = len(mcols)
        seen = False
        for rt_idx, rows in enumerate(row_tiles):
            ru = len(rows)
            if mode in ("dense", "nm"):
                stream = list(range(N))
            elif mode == "block":
                stream = [col for col in range(N) if any(in_block(k, col) for k in rows)]
            else:
                stream = None
            if mode == "unstructured":
                lanes = [[col for col in range(N) if mask[k, col]] for k in rows]
                T = max((len(lane) for lane in lanes), default=0)
            else:
                T = len(stream)
            perf = np.zeros((R, C, max(T, 1)), dtype=bool)
            usef = np.zeros_like(perf)
            filt = 0
            for r, k in enumerate(rows):
                if mode == "unstructured":
                    for j in range(len(lanes[r])):
                        perf[r, :cu, j] = True
                        usef[r, :cu, j] = True
                    filt += len(lanes[r])
                    continue
                for j, col in enumerate(stream):
                    perf[r, :cu, j] = True
                    if mode == "nm":
                        kk = nm_cols[col][k]
                        usef[r, :cu, j] = kk is not None
                        filt += 1
                    else:
                        usef[r, :cu, j] = bool(mask[k, col])
                        if mode == "block":
                            filt += in_block(k, col)
                        else:
                            filt += 1
            if mode == "nm":
                groups = {s // n_ for s in rows}
                inputs = sum(min(K, g * m_ + m_) - g * m_ for g in groups)
                meta = _words(ru * N * nm_bits, wb)
                touched = N
            elif mode == "block":
                inputs = ru
                blocks = {(k // bk, col // bn) for k in rows for col in range(N)
                          if in_block(k, col)}
                meta = len(blocks) + 1
                touched = T
            elif mode == "unstructured":
                inputs = ru
                meta = _meta(arch, filt, ru * N, ru, N)
                touched = len({col for lane in lanes for col in lane})
            else:
                inputs, meta, touched = ru, 0, N
            active = T > 0
            writes = cu * touched if active else 0
            f = Fold(prefix=R, stream=T, performed=perf, useful=usef, rows_used=ru,
                     cols_used=cu,
                     reads={"ifmap": inputs * cu if active else 0,
                            "filter": filt if active else 0,
                            "metadata": meta if active else 0},
                     ofmap_writes=writes, ofmap_reads=writes if (active and seen) else 0)
            f.tiles = {"ifmap": (("is-x", mt_idx, rt_idx), f.reads["ifmap"]),
                       "filter": (("is-w", rt_idx), f.reads["filter"]),
                       "metadata": (("is-w", rt_idx), f.reads["metadata"])}
            f.ofmap_tile = ("is-y", mt_idx)
            f.ofmap_tile_words = N * cu
            f.ofmap_last = rt_idx == len(row_tiles) - 1
            seen = seen or active
            folds.append(f)
    return folds


def _os_folds(folds, arch, M, K, t_idx, tcols, lanes, mask, mode, nm_bits, in_block, bmask):
    R, C, wb = arch.rows, arch.cols, arch.word_bits
    n_, m_ = arch.nm
    bk, bn = arch.block
    cu = len(tcols)
    T = max((len(lane) for lane in lanes), default=0)
    # what the column tile streams, and its metadata
    if mode == "dense":
        filt, meta, kread = K * cu, 0, K
    elif mode == "nm":
        filt = sum(len(lane) for lane in lanes)
        meta = _words(filt * nm_bits, wb)
        kread = len({k for g in range(0, K, m_) for k in range(g, min(K, g + m_))})
    elif mode == "block":
        filt = sum(1 for col in tcols for k in lanes[0] if in_block(k, col))
        blocks = {(k // bk, col // bn) for col in tcols for k in range(K) if in_block(k, col)}
        meta = len(blocks) + bmask.shape[0] + 1
        kread = T
    else:
        filt = sum(len(lane) for lane in lanes)
        meta = _meta(arch, filt, K * cu, cu, K)
        kread = len({k for lane in lanes for k in lane})
    for fr, r0 in enumerate(range(0, M, R)):
        ru = min(R, M - r0)
        perf = np.zeros((R, C, max(T, 1)), dtype=bool)
        usef = np.zeros_like(perf)
        for c, col in enumerate(tcols):
            for j, k in enumerate(lanes[c]):
                perf[:ru, c, j] = True
                usef[:ru, c, j] = k is not None and bool(mask[k, col])
        active = T > 0
        f = Fold(prefix=0, stream=T, performed=perf, useful=usef, rows_used=ru,
                 cols_used=cu,
                 reads={"ifmap": ru * kread if active else 0,
                        "filter": filt if active else 0,
                        "metadata": meta if active else 0},
                 ofmap_writes=ru * cu, ofmap_reads=0)
        f.tiles = {"ifmap": (("os-x", fr), ru * K if active else 0),
                   "filter": (("os-w", t_idx), filt if active else 0),
                   "metadata": (("os-w", t_idx), meta if active else 0)}
        f.ofmap_tile = ("os-y", t_idx, fr)
        f.ofmap_tile_words = ru * cu
        f.ofmap_last = True
        folds.append(f)


def _ws_folds(folds, arch, M, K, t_idx, tcols, lanes, mask, mode, nm_bits, in_block, bmask):
    R, C, wb = arch.rows, arch.cols, arch.word_bits
    n_, m_ = arch.nm
    bk, bn = arch.block
    cu = len(tcols)
    depth = max((len(lane) for lane in lanes), default=0)
    starts = list(range(0, depth, R)) or [0]
    for fr, r0 in enumerate(starts):
        perf = np.zeros((R, C, M), dtype=bool)
        usef = np.zeros_like(perf)
        placed = 0
        ks: set[int] = set()
        block_rows: set[int] = set()
        blocks = 0
        ru = max(0, min(R, depth - r0))
        for c, col in enumerate(tcols):
            for r in range(ru):
                if r0 + r >= len(lanes[c]):
                    continue
                k = lanes[c][r0 + r]
                perf[r, c, :] = True
                nonzero = k is not None and bool(mask[k, col])
                usef[r, c, :] = nonzero
                if mode == "nm":
                    placed += 1
                    g = (r0 + r) // n_
                    ks.update(range(g * m_, min(K, g * m_ + m_)))
                elif mode == "block":
                    placed += in_block(k, col)
                    ks.add(k)
                    block_rows.add(k // bk)
                else:
                    placed += 1
                    ks.add(k)
        if mode == "nm":
            meta = _words(ru * cu * nm_bits, wb)
        elif mode == "block":
            for kb in block_rows:
                blocks += len({col // bn for col in tcols if bmask[kb, col // bn]})
            meta = blocks + len(block_rows) + (1 if ru else 0)
        elif mode == "unstructured":
            bits = _ws_bitmap_bits(lanes, r0, R, K) if arch.layout == "bitmap" else 0
            meta = _meta(arch, placed, bits, cu, K)
        else:
            meta = 0
        active = ru > 0
        inputs = len(ks)
        f = Fold(prefix=R, stream=M if active else 0, performed=perf, useful=usef,
                 rows_used=ru, cols_used=cu,
                 reads={"ifmap": M * inputs, "filter": placed, "metadata": meta},
                 ofmap_writes=M * cu if (active or fr == 0) else 0,
                 ofmap_reads=M * cu if (active and fr > 0) else 0)
        shared = mode in ("dense", "nm")
        f.tiles = {"ifmap": (("ws-x", fr) if shared else ("ws-x", t_idx, fr), M * inputs),
                   "filter": (("ws-w", t_idx, fr), placed),
                   "metadata": (("ws-w", t_idx, fr), meta)}
        f.ofmap_tile = ("ws-y", t_idx)
        f.ofmap_tile_words = M * cu
        f.ofmap_last = fr == len(starts) - 1
        folds.append(f)


@dataclass
class _Transfer:
    kind: str  # "load" or "write"
    fold: int
    parts: dict[str, int]
    remaining: Fraction


def _spans(parts: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Word ranges of each operand inside one transfer (operands are sent in order)."""
    out, lo = {}, 0
    for op, w in parts.items():
        out[op] = (lo, lo + w)
        lo += w
    return out


def _dram_plan(arch: Arch, folds: list[Fold]) -> tuple[list[dict], list[dict]]:
    """Per fold, the DRAM words to load before it and to write after it, per operand."""
    half = {"ifmap": arch.sram_words("ifmap") // 2, "filter": arch.sram_words("filter") // 2,
            "ofmap": arch.sram_words("ofmap") // 2}
    loads = [dict.fromkeys(("ifmap", "filter", "metadata", "ofmap"), 0) for _ in folds]
    writes = [{"ofmap": 0} for _ in folds]
    for op in ("ifmap", "filter"):
        sizes: dict = {}
        for f in folds:
            tid, w = f.tiles[op]
            if op == "filter":
                w += f.tiles["metadata"][1]
            if w:
                sizes[tid] = max(sizes.get(tid, 0), w)
        whole = sum(sizes.values()) <= half[op]
        resident: set = set()
        for i, f in enumerate(folds):
            tid, w = f.tiles[op]
            mw = f.tiles["metadata"][1] if op == "filter" else 0
            if w + mw == 0:
                if not whole:
                    resident = set()
                continue
            if tid not in resident:
                loads[i][op] += w
                if op == "filter":
                    loads[i]["metadata"] += mw
            if whole:
                resident.add(tid)
            else:
                resident = {tid} if w + mw <= half[op] else set()
    for i, f in enumerate(folds):
        if f.ofmap_tile_words <= half["ofmap"]:
            if f.ofmap_last:
                writes[i]["ofmap"] += f.ofmap_tile_words
        else:
            writes[i]["ofmap"] += f.ofmap_writes
            loads[i]["ofmap"] += f.ofmap_reads
    return loads, writes


def run_reference(arch: Arch, M: int, K: int, N: int, mask: np.ndarray | None, *,
                  trace: bool = False, energy_table: EnergyTable | str | Path | None = None,
                  name: str = "gemm") -> Result:
    """Simulate cycle by cycle (see the module docstring)."""
    R, C = arch.rows, arch.cols
    folds = plan_folds(arch, M, K, N, mask)
    lengths = [f.length(R, C) for f in folds]
    loads, writes = _dram_plan(arch, folds)
    bw = arch.bandwidth
    lat = arch.dram_latency
    F = len(folds)
    rr, cc = np.meshgrid(np.arange(R), np.arange(C), indexing="ij")

    load_ready = [None] * F  # cycle from which fold f's operands are usable
    write_done = [None] * F
    queue: deque[_Transfer] = deque()
    dram_moved = {"ifmap": 0, "filter": 0, "metadata": 0, "ofmap_r": 0, "ofmap_w": 0}

    def issue(kind: str, f: int, parts: dict[str, int], now: int) -> None:
        words = sum(parts.values())
        if kind == "load":
            dram_moved["ifmap"] += parts["ifmap"]
            dram_moved["filter"] += parts["filter"]
            dram_moved["metadata"] += parts["metadata"]
            dram_moved["ofmap_r"] += parts["ofmap"]
        else:
            dram_moved["ofmap_w"] += parts["ofmap"]
        if words == 0 or bw is None:
            if kind == "load":
                load_ready[f] = now
            else:
                write_done[f] = now
            return
        queue.append(_Transfer(kind, f, parts, Fraction(words)))

    performed = useful = 0
    busy_cycles = 0
    cur = -1  # running fold
    cur_u = 0
    next_fold = 0
    last_end = 0
    first_start = None
    t = 0
    tr: dict[str, list] = {k: [] for k in ("cycle", "fold", "active_pes", "useful_pes",
                                           "ifmap_buffer_words", "filter_buffer_words",
                                           "ofmap_buffer_words", "dram_busy")}
    if F:
        issue("load", 0, loads[0], 0)
    pending_writes = 0
    staged = {"ifmap": Fraction(0), "filter": Fraction(0), "metadata": Fraction(0),
              "ofmap": Fraction(0)}
    pending_out = 0
    drained = Fraction(0)
    while True:
        # start every fold that can start now (zero-length folds end at once)
        while cur < 0 and next_fold < F:
            f = next_fold
            ready = (load_ready[f] is not None and load_ready[f] <= t
                     and (f < 2 or (write_done[f - 2] is not None and write_done[f - 2] <= t))
                     and last_end <= t)
            if not ready:
                break
            if first_start is None:
                first_start = t
            if f + 1 < F:
                issue("load", f + 1, loads[f + 1], t)
            if f >= 1:
                issue("write", f - 1, writes[f - 1], t)
            next_fold += 1
            if trace:  # the fold's tiles stop being staged and become its working set
                for op in staged:
                    staged[op] -= loads[f].get(op, 0)
                if f >= 1:
                    pending_out += writes[f - 1]["ofmap"]
            if lengths[f] == 0:
                last_end = t
                if f == F - 1:
                    issue("write", f, writes[f], t)
                continue
            cur, cur_u = f, 0
        if cur < 0 and next_fold >= F and not queue:
            break
        if t > MAX_CYCLES:
            raise ValueError(f"problem too large for the reference engine (> {MAX_CYCLES} "
                             f"cycles); use engine='fast'")
        # one cycle of the array
        act = use = 0
        if cur >= 0:
            fo = folds[cur]
            j = cur_u - fo.prefix - rr - cc
            ok = (j >= 0) & (j < fo.stream)
            jj = np.where(ok, j, 0)
            act = int((fo.performed[rr, cc, jj] & ok).sum())
            use = int((fo.useful[rr, cc, jj] & ok).sum())
            performed += act
            useful += use
            busy_cycles += 1
        # one cycle of the DRAM channel
        busy = 0
        if queue:
            head = queue[0]
            busy = 1
            before = head.remaining
            head.remaining -= bw
            if trace and head.kind == "load":  # words arriving for a fold not yet started
                total = sum(head.parts.values())
                done_before = total - max(before, 0)
                done_after = total - max(head.remaining, 0)
                for op, (lo, hi) in _spans(head.parts).items():
                    got = max(0, min(hi, done_after) - max(lo, done_before))
                    staged[op] += got
            elif trace:  # outputs leaving the drain half
                drained += min(before, bw)
            if head.remaining <= 0:
                queue.popleft()
                if head.kind == "load":
                    load_ready[head.fold] = t + 1 + lat
                else:
                    write_done[head.fold] = t + 1
                    pending_writes = t + 1
        if trace:
            running = cur if cur >= 0 else -1
            fo = folds[running] if running >= 0 else None
            tr["cycle"].append(t)
            tr["fold"].append(running)
            tr["active_pes"].append(act)
            tr["useful_pes"].append(use)
            tr["ifmap_buffer_words"].append(
                (fo.tiles["ifmap"][1] if fo else 0) + float(staged["ifmap"]))
            tr["filter_buffer_words"].append(
                (fo.tiles["filter"][1] + fo.tiles["metadata"][1] if fo else 0)
                + float(staged["filter"] + staged["metadata"]))
            tr["ofmap_buffer_words"].append(
                (fo.ofmap_tile_words * min(1.0, (cur_u + 1) / max(lengths[running], 1))
                 if fo else 0) + float(max(pending_out - drained, 0)))
            tr["dram_busy"].append(busy)
        t += 1
        if cur >= 0:
            cur_u += 1
            if cur_u == lengths[cur]:
                last_end = t
                if cur == F - 1:
                    issue("write", cur, writes[cur], t)
                cur = -1
    end = max(t, last_end, pending_writes)
    if F and lengths and sum(lengths) == 0:
        end = max(end, 0)
    stall = end - busy_cycles
    drain = end - last_end
    fill = first_start or 0

    def total(op: str) -> int:
        return sum(f.reads[op] for f in folds)

    dram_reads = {"ifmap": dram_moved["ifmap"], "filter": dram_moved["filter"],
                  "metadata": dram_moved["metadata"], "ofmap": dram_moved["ofmap_r"]}
    dram_writes = {"ifmap": 0, "filter": 0, "metadata": 0, "ofmap": dram_moved["ofmap_w"]}
    sram_reads = {"ifmap": total("ifmap"), "filter": total("filter"),
                  "metadata": total("metadata"),
                  "ofmap": sum(f.ofmap_reads for f in folds) + dram_writes["ofmap"]}
    sram_writes = {"ifmap": dram_reads["ifmap"], "filter": dram_reads["filter"],
                   "metadata": dram_reads["metadata"],
                   "ofmap": sum(f.ofmap_writes for f in folds) + dram_reads["ofmap"]}
    active = [i for i, n in enumerate(lengths) if n > 0]
    mapping = (sum(folds[i].rows_used * folds[i].cols_used for i in active)
               / (len(active) * R * C)) if active else 0.0
    compute = max(busy_cycles - 1, 0)
    energy = estimate_energy(arch, useful, performed, sram_reads, sram_writes, dram_reads,
                             dram_writes, energy_table)
    return Result(
        name=name, M=M, K=K, N=N, arch=arch, compute_cycles=compute, stall_cycles=stall,
        total_cycles=compute + stall, elapsed_cycles=end,
        utilization=useful / (arch.pes * end) if end else 0.0, mapping_efficiency=mapping,
        useful_macs=useful, performed_macs=performed, folds=F, active_folds=len(active),
        sram_reads=sram_reads, sram_writes=sram_writes, dram_reads=dram_reads,
        dram_writes=dram_writes, energy_pj=energy,
        stall_breakdown={"fill": fill, "between": stall - fill - drain, "drain": drain},
        engine="reference",
        trace={k: np.asarray(v) for k, v in tr.items()} if trace else None)
