"""The simulator preset that models the measuring machine as an accelerator.

The machine's measured peak ``F`` (FLOP/s) and streaming bandwidth ``B`` (bytes/s) become an
output-stationary array of ``P`` PEs (one MAC per PE per cycle) at clock ``f = F / (2 P)``
whose DRAM channel delivers ``B / (word_bytes * f)`` words per cycle, so a large dense GEMM
runs at ``F`` and a batch-1 product at ``B`` on both sides, and the speedup-vs-density curves
of kernels and simulator can stand side by side.

``P`` is the power of two nearest ``F / (2 * nominal clock)``. On a CPU the array is
``P / lanes`` rows by ``lanes`` columns, ``lanes`` the fp32 SIMD width (16 for AVX-512, 8 for
AVX2): for 2 AVX-512 cores at ~2.8 GHz that is 4 x 16 = 64 MACs/cycle (2 cores x 2 FMA
units x 16 lanes); rows hold batch columns and columns output features, as a SIMD kernel
would. On a GPU the array is square. Each on-chip buffer gets a third of the last-level
cache (the L2 on a GPU), as the simulator's README advises for a roofline preset: the kernels
tile the dense operand to stay cache-resident, so operands cross the memory link about once;
with smaller buffers the simulator's fold order re-reads X for every column tile and makes
mid-batch sparse products memory-bound where the kernels are not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sparse_accel_sim as sim
from sparse_ops.registry import get_layout, names

from .machine import Machine

NOMINAL_CLOCK_HZ = {"cpu": 2.5e9, "cuda": 1.5e9}


@dataclass(frozen=True)
class Preset:
    """The dense preset ``arch`` and how it was derived (clock in Hz, bandwidth in bytes/s)."""

    arch: sim.Arch
    clock_hz: float
    bandwidth: float
    bandwidth_source: str

    def describe(self) -> str:
        """One line for the report."""
        a = self.arch
        dram = a.dram_words_per_cycle or 0.0
        return (
            f"{a.rows}x{a.cols} PEs, {a.dataflow.upper()} dataflow, {a.word_bytes}-byte words, "
            f"clock {self.clock_hz / 1e9:.2f} GHz (peak {2 * a.pes * self.clock_hz / 1e9:.0f} "
            f"GFLOP/s), DRAM {dram:.2f} words/cycle (= {self.bandwidth / 1e9:.1f} GB/s, the "
            f"{self.bandwidth_source}), buffers {a.ifmap_sram_kb:.0f} KB each"
        )

    def to_dict(self) -> dict:
        """The preset as a JSON-ready dict."""
        return {"arch": self.arch.to_dict(), "clock_hz": self.clock_hz,
                "bandwidth": self.bandwidth, "bandwidth_source": self.bandwidth_source}


def array_shape(peak_flops: float, device: str, lanes: int) -> tuple[int, int]:
    """(rows, cols) of the PE array for a machine of ``peak_flops`` (see the module doc)."""
    macs = peak_flops / (2 * NOMINAL_CLOCK_HZ.get(device, 2.5e9))
    pes = 2 ** max(0, round(math.log2(max(1.0, macs))))
    if device == "cuda":
        side = 2 ** (int(math.log2(pes)) // 2)
        return side, pes // side
    cols = min(lanes, pes)
    return pes // cols, cols


def simd_lanes(simd: str) -> int:
    """fp32 lanes of the SIMD level named in ``simd`` (16 AVX-512, 8 AVX2, else 4)."""
    s = simd.lower()
    return 16 if "512" in s else 8 if "avx" in s else 4


def make_preset(machine: Machine, word_bytes: int = 4) -> Preset:
    """The dense preset for ``machine``, DRAM at its read bandwidth at the working-set size."""
    rows, cols = array_shape(machine.peak_flops, machine.device, simd_lanes(machine.simd))
    clock = machine.peak_flops / (2 * rows * cols)
    bw = machine.bandwidth_read
    cache = machine.llc_bytes or machine.l2_bytes
    sram_kb = cache / 3 / 1024 if cache else 1024.0
    arch = sim.Arch(
        rows=rows, cols=cols, dataflow="os", ifmap_sram_kb=sram_kb, filter_sram_kb=sram_kb,
        ofmap_sram_kb=sram_kb, dram_words_per_cycle=bw / (word_bytes * clock),
        word_bytes=word_bytes, dram_latency=0, clock_ghz=clock / 1e9,
        name=f"preset of {machine.name}",
    )
    return Preset(arch=arch, clock_hz=clock, bandwidth=bw,
                  bandwidth_source="read bandwidth at the weight's working-set size")


def sparse_arch(arch: sim.Arch, layout: str, block: int = 1, nm: tuple[int, int] = (2, 4),
                balance: bool = False) -> sim.Arch:
    """``arch`` (the preset's) with the sparsity support matching a format.

    By the layout's family in the sparse_ops registry: unstructured (``csr``, ``bitmap``) →
    zero skipping per PE lane (``"unstructured"``, SparTen-style ``balance``) with the weight
    tiles stored in that layout (``Arch.layout``: CSR indices or one bit a position); block
    (``bsr``) → skipping all-zero ``block x block`` tiles; ``nm`` → an N:M sparse array
    (sparse tensor core style); ``dense`` → ``arch`` itself.
    """
    if layout == "dense":
        return arch
    try:
        family = get_layout(layout).family
    except ValueError:
        raise ValueError(f"layout: expected dense or one of {names()}, got {layout!r}") from None
    if family == "unstructured":
        if layout not in sim.LAYOUTS:
            raise ValueError(f"layout: the simulator has no layout {layout!r} "
                             f"(Arch.layout: one of {sim.LAYOUTS})")
        return arch.with_(sparsity="unstructured", balance=balance, layout=layout)
    if family == "block":
        return arch.with_(sparsity="block", block=(block, block))
    return arch.with_(sparsity="nm", nm=nm)
