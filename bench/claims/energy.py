"""Claim 7: energy of a batch-1 fully connected layer (Horowitz's table; EIE's argument).

A DRAM word costs hundreds of times a MAC (Horowitz, 45 nm: 64-bit DRAM access ~2 nJ, fp32
MAC 4.6 pJ), so a batch-1 layer's energy is DRAM traffic and a sparse layer saves in
proportion to the bytes it no longer moves, not to the MACs it skips. The simulator's energy
pass (counts x the 45 nm table) gives the split; the CPU has no energy counters here, so the
kernel side reports time and bytes only. The simulated layer runs on the preset with 1 MB
buffers, the largest SRAM of Horowitz's table (no extrapolation of SRAM energy; at batch 1 the
buffer size changes no traffic: every weight is used once).
"""

from __future__ import annotations

import sparse_accel_sim as sim

from . import verdict as rules
from .config import Sizes
from .lab import Lab
from .result import ClaimResult
from .workloads import Job, Spec

DENSITY = 0.1
SRAM_KB = 1024.0


def specs(sizes: Sizes) -> list[Spec]:
    """CSR (first: it decides the verdict), bitmap and the largest BSR block at density 0.1,
    and 2:4."""
    out = [Spec.csr(DENSITY), Spec.bitmap(DENSITY), Spec.nm(2, 4)]
    if sizes.bytes_blocks:
        out.append(Spec.bsr(DENSITY, sizes.bytes_blocks[-1]))
    return out


def jobs(sizes: Sizes) -> list[Job]:
    """Simulated at 1 MB buffers; measured (the same weights at batch 1) as in claim 4."""
    return [j for s in specs(sizes) for j in (Job(s, 1, measure=False, sram_kb=SRAM_KB),
                                              Job(s, 1))]


def split(result: sim.Result) -> dict[str, float]:
    """pJ of DRAM (all operands and metadata), compute (MACs, gated MACs) and the rest."""
    e = result.energy_pj
    price = sim.default_table().dram_word(result.arch.word_bits)
    meta_dram = (result.dram_reads["metadata"] + result.dram_writes["metadata"]) * price
    dram = e["dram"] + meta_dram
    compute = e["mac"] + e["gated_mac"]
    return {"dram": dram, "compute": compute, "other": e["total"] - dram - compute,
            "total": e["total"],
            "dram_words": sum(result.dram_reads.values()) + sum(result.dram_writes.values()),
            "macs": result.performed_macs}


def analyse(lab: Lab) -> ClaimResult:
    """DRAM share of the dense layer's energy and the sparse/dense energy, bytes and MAC
    ratios; the first format (CSR) decides the verdict."""
    rows = []
    dense_split = None
    for spec in specs(lab.sizes):
        pair, cell = lab.sims[Job(spec, 1, measure=False, sram_kb=SRAM_KB)], lab.cell(Job(spec, 1))
        d, s = split(pair.dense), split(pair.sparse)
        dense_split = d
        rows.append({
            "fmt": spec.fmt, "density": cell.density, "sparse": s,
            "energy_ratio": s["total"] / d["total"],
            "bytes_ratio": s["dram_words"] / d["dram_words"],
            "mac_ratio": s["macs"] / d["macs"],
            "dram_share_sparse": s["dram"] / s["total"],
            "measured_speedup": cell.speedup,
            "format_bytes_ratio": cell.sparse_bytes / cell.dense_bytes,
        })
    assert dense_split is not None
    share = dense_split["dram"] / dense_split["total"]
    main = rows[0]
    v = rules.energy_tracks_bytes(share, main["energy_ratio"], main["bytes_ratio"],
                                  main["mac_ratio"])
    simulated = (f"dense B=1 layer ({SRAM_KB / 1024:.0f} MB buffers): DRAM {share:.0%}, compute "
                 f"{dense_split['compute'] / dense_split['total']:.1%} of energy; sparse/dense "
                 "energy (DRAM-bytes ratio, MAC ratio): " + ", ".join(
                     f"{r['fmt']} d={r['density']:.2g}: {r['energy_ratio']:.3f} "
                     f"({r['bytes_ratio']:.3f}, {r['mac_ratio']:.3f})" for r in rows))
    measured = "no energy counters on this machine; B=1 time speedup (format bytes/dense): " + \
        ", ".join(f"{r['fmt']} {r['measured_speedup']:.2f}x ({r['format_bytes_ratio']:.3f})"
                  for r in rows)
    return ClaimResult(
        number=7,
        claim="Energy: DRAM dominates a batch-1 FC layer's energy, so the sparse saving "
              "tracks bytes saved more than MACs skipped",
        source="Horowitz 2014 (ISSCC, energy table); Han et al. 2016 (EIE)",
        measured=measured, simulated=simulated, verdict=v,
        figures={"dense": dense_split, "dram_share_dense": share, "formats": rows,
                 "energy_table": sim.default_table().source},
        plots=["claim7_energy.png"],
    )
