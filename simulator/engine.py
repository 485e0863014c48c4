"""The public simulation calls: one GEMM, one convolution, a list of layers.

``engine="fast"`` (default) uses the closed-form fold table (``folding.py``), the traffic
model and the fold-level DRAM schedule (``memory.py``): its cost grows with the number of
folds, not with cycles. ``engine="reference"`` (or ``trace=True``) steps every cycle
(``reference.py``); both give the same totals.
"""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any

import numpy as np

from .arch import Arch
from .energy import EnergyTable, estimate_energy
from .folding import build_fold_table, build_sddmm_table
from .memory import schedule, traffic
from .pattern import WeightPattern
from .result import Result, summarize
from .sparsity import check_density, check_nm, synthetic_mask, to_numpy, weight_mask
from .workload import ConvShape, Layer, check_dim

ENGINES = ("fast", "reference")


def prepare_mask(arch: Arch, K: int, N: int, weight: Any = None, density: float | None = None,
                 seed: int = 0) -> np.ndarray | None:
    """The ``K x N`` nonzero pattern to simulate, or ``None`` for the closed-form dense case.

    A given ``weight`` is used as is (and checked against ``arch.nm`` in ``"nm"`` mode). With
    no weight, ``density`` makes a synthetic pattern of the architecture's kind: uniform for
    ``"dense"`` and ``"unstructured"``, whole blocks for ``"block"``; ``"nm"`` without a weight
    assumes exactly n nonzeros in every group of m.
    """
    if weight is not None:
        if density is not None:
            raise ValueError("give either weight or density, not both")
        mask = weight_mask(weight, K, N)
        if arch.sparsity == "nm":
            check_nm(mask, *arch.nm)
        return mask
    density = check_density(density)
    if density is None:
        return None
    if arch.sparsity == "nm":
        return None
    kind = "block" if arch.sparsity == "block" else "uniform"
    return synthetic_mask(K, N, float(density), kind, seed=seed, block=arch.block)


def _check_arch(arch: Any) -> Arch:
    if not isinstance(arch, Arch):
        raise TypeError(f"arch must be a simulator.Arch, got {type(arch).__name__}")
    return arch


def simulate_gemm(arch: Arch, M: int, K: int, N: int, weight: Any = None, *,
                  density: float | None = None, seed: int = 0, engine: str = "fast",
                  trace: bool = False, energy_table: EnergyTable | str | Path | None = None,
                  name: str = "gemm", pattern: WeightPattern | None = None) -> Result:
    """Simulate ``X (M x K) @ W (K x N)`` on ``arch``.

    Args:
        arch: the accelerator.
        M, K, N: GEMM sizes (SCALE-Sim's convention: N = output channels).
        weight: ``K x N`` array or tensor whose zeros are the sparsity pattern
            (``None`` = dense, or synthetic when ``density`` is given).
        density: fraction of nonzero weights of a synthetic pattern (see ``prepare_mask``).
        seed: seed of the synthetic pattern.
        engine: ``"fast"`` or ``"reference"`` (cycle stepping, small problems only).
        trace: return a per-cycle trace in ``Result.trace`` (runs the reference engine).
        energy_table: a table, a YAML path or ``None`` for the 45 nm default.
        name: label of the result.
        pattern: the weight pattern already prepared (``pattern.WeightPattern``, e.g. by
            ``PreparedWorkload``), replacing ``weight``/``density``; reused across calls.
    """
    arch = _check_arch(arch)
    M, K, N = check_dim("M", M), check_dim("K", K), check_dim("N", N)
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if pattern is not None:
        if weight is not None or density is not None:
            raise ValueError("give either pattern or weight/density, not both")
        if not isinstance(pattern, WeightPattern):
            raise TypeError(f"pattern must be a WeightPattern, got {type(pattern).__name__}")
        mask: np.ndarray | WeightPattern | None = pattern
    else:
        mask = prepare_mask(arch, K, N, weight, density, seed)
    if trace or engine == "reference":
        from .reference import run_reference

        if isinstance(mask, WeightPattern):
            mask = mask.mask
        return run_reference(arch, M, K, N, mask, trace=trace, energy_table=energy_table,
                             name=name)
    table = build_fold_table(arch, M, K, N, mask)
    return result_from_table(arch, M, K, N, table, energy_table, name)


def result_from_table(arch: Arch, M: int, K: int, N: int, table: Any,
                      energy_table: EnergyTable | str | Path | None, name: str) -> Result:
    """Traffic, DRAM schedule and energy of a fold table, as a ``Result``."""
    tr = traffic(table, arch)
    tl = schedule(table.length, tr.load_words, tr.write_words, arch.bandwidth,
                  arch.dram_latency)
    compute = table.compute_cycles()
    energy = estimate_energy(arch, table.useful_macs, table.performed_macs, tr.sram_reads,
                             tr.sram_writes, tr.dram_reads, tr.dram_writes, energy_table)
    return Result(
        name=name, M=M, K=K, N=N, arch=arch,
        compute_cycles=compute, stall_cycles=tl.stall, total_cycles=compute + tl.stall,
        elapsed_cycles=tl.end,
        utilization=table.useful_macs / (arch.pes * tl.end) if tl.end else 0.0,
        mapping_efficiency=table.mapping_efficiency(),
        useful_macs=table.useful_macs, performed_macs=table.performed_macs,
        folds=table.folds, active_folds=int((table.length > 0).sum()),
        sram_reads=tr.sram_reads, sram_writes=tr.sram_writes, dram_reads=tr.dram_reads,
        dram_writes=tr.dram_writes, energy_pj=energy,
        stall_breakdown={"fill": tl.fill, "between": tl.between, "drain": tl.drain},
        engine="fast")


def simulate_sddmm(arch: Arch, M: int, K: int, N: int, mask: Any = None, *,
                   density: float | None = None, seed: int = 0,
                   energy_table: EnergyTable | str | Path | None = None,
                   name: str = "sddmm") -> Result:
    """Simulate a sampled dense-dense product ``(A (M x K) @ B (K x N)) * mask``.

    ``mask`` is the ``M x N`` output pattern (nonzeros = outputs to compute), or a synthetic
    uniform one of ``density``; ``None`` and no density samples every output. This is the
    weight-gradient product of sparse training (dW at W's nonzeros). See
    ``folding.build_sddmm_table`` for how each dataflow skips work. Fast engine only.
    """
    arch = _check_arch(arch)
    M, K, N = check_dim("M", M), check_dim("K", K), check_dim("N", N)
    if mask is not None:
        if density is not None:
            raise ValueError("give either mask or density, not both")
        out = weight_mask(mask, M, N)
    elif density is not None:
        out = prepare_mask(arch.with_(sparsity="unstructured"), M, N, None, density, seed)
    else:
        out = np.ones((M, N), dtype=bool)
    table = build_sddmm_table(arch, M, K, N, out)
    return result_from_table(arch, M, K, N, table, energy_table, name)


def conv_weight_to_gemm(weight: Any, conv: ConvShape) -> np.ndarray:
    """A convolution weight as the ``K x N`` GEMM weight of its im2col lowering.

    Accepts ``(num_filters, channels, filter_h, filter_w)`` (PyTorch's layout; K is then
    ordered channel-major, so N:M groups run along input channels) or ``K x N`` already.
    """
    arr = to_numpy(weight)
    M, K, N = conv.gemm()
    if arr.ndim == 4:
        want = (conv.num_filters, conv.channels, conv.filter_h, conv.filter_w)
        if tuple(arr.shape) != want:
            raise ValueError(f"conv weight has shape {tuple(arr.shape)}, expected {want} "
                             f"(num_filters, channels, filter_h, filter_w)")
        return arr.reshape(conv.num_filters, -1).T
    return arr


def simulate_conv(arch: Arch, ifmap_h: int, ifmap_w: int, filter_h: int, filter_w: int,
                  channels: int, num_filters: int, stride: int | tuple[int, int] = 1,
                  weight: Any = None, **kwargs: Any) -> Result:
    """Simulate a convolution lowered by im2col (see ``workload.ConvShape``)."""
    sh, sw = (stride, stride) if isinstance(stride, numbers.Integral) else stride
    conv = ConvShape(ifmap_h, ifmap_w, filter_h, filter_w, channels, num_filters, sh, sw)
    M, K, N = conv.gemm()
    if weight is not None:
        weight = conv_weight_to_gemm(weight, conv)
    kwargs.setdefault("name", "conv")
    return simulate_gemm(arch, M, K, N, weight, **kwargs)


def layer_arch(arch: Arch, layer: Layer) -> Arch:
    """The architecture a layer runs on: an ``"nm"`` array takes the layer's own N:M ratio."""
    if arch.sparsity == "nm" and layer.nm is not None and layer.nm[0] < layer.nm[1]:
        return arch.with_(nm=layer.nm)
    return arch


def simulate_layers(arch: Arch, layers: list[Layer], *, weights: dict[str, Any] | None = None,
                    density: float | None = None, seed: int = 0, engine: str = "fast",
                    energy_table: EnergyTable | str | Path | None = None) -> list[Result]:
    """Simulate each layer (one after another on the same array); see ``summarize``.

    ``weights`` maps layer names to weights; other layers use ``density`` (or run dense),
    layer ``i`` with seed ``seed + i``. To run many architectures on the same layers, build a
    ``PreparedWorkload`` once and call its ``simulate``: the weight patterns are then
    derived once, not per call.
    """
    from .prepared import PreparedWorkload

    arch = _check_arch(arch)
    work = PreparedWorkload(layers, weights=weights, density=density, seed=seed)
    return work.simulate(arch, engine=engine, energy_table=energy_table)


def simulate_topology(arch: Arch, layers: list[Layer], **kwargs: Any) -> Result:
    """The summed result of a layer list (``summarize(simulate_layers(...))``)."""
    return summarize(simulate_layers(arch, layers, **kwargs), name="total")
