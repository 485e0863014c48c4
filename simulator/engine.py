"""The public simulation calls: one GEMM, one convolution, an SDDMM, a list of layers.

Each checks its arguments, asks ``mask_choice`` which weight pattern to run (the one rule
shared with ``PreparedWorkload``) and runs it with ``gemm_engine.run_gemm``:
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

from .arch import Arch, check_arch
from .energy import EnergyTable
from .folding import build_sddmm_table
from .gemm_engine import ENGINES, check_engine, result_from_table, run_gemm
from .mask_choice import prepare_mask
from .pattern import WeightPattern
from .prepared import PreparedWorkload
from .result import Result, summarize
from .sparsity import weight_mask
from .workload import ConvShape, Layer, check_dim, conv_weight_to_gemm

# The public calls, and names that lived here before (ENGINES, conv_weight_to_gemm,
# prepare_mask, result_from_table), still importable from here.
__all__ = ["ENGINES", "conv_weight_to_gemm", "prepare_mask", "result_from_table",
           "simulate_conv", "simulate_gemm", "simulate_layers", "simulate_sddmm",
           "simulate_topology"]


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
    arch = check_arch(arch)
    M, K, N = check_dim("M", M), check_dim("K", K), check_dim("N", N)
    check_engine(engine)
    if pattern is not None:
        if weight is not None or density is not None:
            raise ValueError("give either pattern or weight/density, not both")
        if not isinstance(pattern, WeightPattern):
            raise TypeError(f"pattern must be a WeightPattern, got {type(pattern).__name__}")
        mask: np.ndarray | WeightPattern | None = pattern
    else:
        mask = prepare_mask(arch, K, N, weight, density, seed)
    return run_gemm(arch, M, K, N, mask, engine=engine, trace=trace, energy_table=energy_table,
                    name=name)


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
    arch = check_arch(arch)
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


def simulate_layers(arch: Arch, layers: list[Layer], *, weights: dict[str, Any] | None = None,
                    density: float | None = None, seed: int = 0, engine: str = "fast",
                    energy_table: EnergyTable | str | Path | None = None) -> list[Result]:
    """Simulate each layer (one after another on the same array); see ``summarize``.

    ``weights`` maps layer names to weights; other layers use ``density`` (or run dense),
    layer ``i`` with seed ``seed + i``. To run many architectures on the same layers, build a
    ``PreparedWorkload`` once and call its ``simulate``: the weight patterns are then
    derived once, not per call.
    """
    arch = check_arch(arch)
    work = PreparedWorkload(layers, weights=weights, density=density, seed=seed)
    return work.simulate(arch, engine=engine, energy_table=energy_table)


def simulate_topology(arch: Arch, layers: list[Layer], **kwargs: Any) -> Result:
    """The summed result of a layer list (``summarize(simulate_layers(...))``)."""
    return summarize(simulate_layers(arch, layers, **kwargs), name="total")
