"""Verdict rules: each turns numbers into "holds" / "partly holds" / "does not hold" and states
the rule with the numbers it used. Nothing here is written in by hand per run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from .result import Verdict
from .stats import median, spearman

HOLDS, PARTLY, NOT, UNTESTED = "holds", "partly holds", "does not hold", "not tested"


def _f(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def unstructured_breakeven(breakeven: Mapping[int, float | None], status: Mapping[int, str],
                           threshold: float = 0.3) -> Verdict:
    """Claim 1: CSR beats dense only at high sparsity, for every batch.

    ``breakeven[b]``: interpolated break-even density of batch ``b`` (None when the curve does
    not cross 1); ``status[b]``: ``crosses``, ``faster everywhere``, ``slower everywhere`` or
    ``inverted``. A batch agrees when sparse wins only below ``threshold`` density (at least
    70 % sparsity): it crosses at or below the threshold, or never wins in range.
    """
    agree = []
    for b in breakeven:
        d, st = breakeven[b], status[b]
        agree.append(st == "slower everywhere" or (st == "crosses" and d is not None
                                                   and d <= threshold))
    n_ok, n = sum(agree), len(agree)
    verdict = HOLDS if n and n_ok == n else PARTLY if n_ok else NOT
    return Verdict(verdict, f"CSR wins only below {threshold:.0%} density (>= "
                            f"{1 - threshold:.0%} sparsity) in {n_ok} of {n} batch sizes "
                            f"(all: holds; some: partly; none: does not hold)")


def rises_with(xs: Sequence[float], ys: Sequence[float], what: str, strong: float = 0.8,
               weak: float = 0.3) -> Verdict:
    """Claim 2: ``ys`` rise with ``xs``: Spearman rho > ``strong`` holds, > ``weak`` partly.

    Constant ``ys`` do not rise: does not hold. Fewer than 2 points: not tested.
    """
    if len(xs) < 2:
        return Verdict(UNTESTED, f"{what}: fewer than 2 points")
    if len(set(ys)) == 1:
        return Verdict(NOT, f"{what}: the same for every value (no rise; Spearman rho "
                            "undefined)")
    rho = spearman(list(xs), list(ys))
    verdict = HOLDS if rho > strong else PARTLY if rho > weak else NOT
    return Verdict(verdict, f"{what}: Spearman rho = {rho:.2f} (> {strong}: holds, "
                            f"> {weak}: partly)")


def nm_speedup(sim_compute: float, sim_memory: float, measured: Sequence[float],
               math_gain: float = 1.8, lo: float = 1.1, hi: float = 2.0) -> Verdict:
    """Claim 3: a 2:4 array doubles math throughput; real end-to-end gains are 1.1-1.7x.

    The simulator half holds when its speedup at the largest batch (compute-bound) is >=
    ``math_gain`` and the one at batch 1 (memory-bound where the weight streams from memory)
    is smaller; the kernel half when the best measured 2:4 speedup lies in ``[lo, hi]``. Both:
    holds; one: partly; neither: does not hold.
    """
    best = max(measured) if measured else math.nan
    sim_ok = sim_compute >= math_gain and sim_memory < sim_compute
    kern_ok = lo <= best <= hi
    verdict = HOLDS if sim_ok and kern_ok else PARTLY if sim_ok or kern_ok else NOT
    return Verdict(verdict, f"simulated 2:4 speedup at the largest batch {_f(sim_compute)}x "
                            f"(>= {math_gain}) > at batch 1 {_f(sim_memory)}x: "
                            f"{'yes' if sim_ok else 'no'}; best measured {_f(best)}x in "
                            f"[{lo}, {hi}]: "
                            f"{'yes' if kern_ok else 'no'} (both: holds; one: partly)")


def bytes_bound(measured: Sequence[float], predicted: Sequence[float], rho_min: float = 0.8,
                ceiling: float = 1.2, share: float = 0.8, eff_min: float = 0.5) -> Verdict:
    """Claim 4: batch-1 speedup is set by bytes.

    Holds when (a) Spearman rho(measured, byte-ratio speedup) >= ``rho_min``, (b) at least
    ``share`` of the cells stay under ``ceiling`` x the byte ratio (bytes bound the gain) and
    (c) the median efficiency measured / byte ratio is >= ``eff_min`` (bytes, not something
    else, are the limit). (a) with (b) or (c): partly. No (a): does not hold.
    """
    rho = spearman(list(measured), list(predicted))
    eff = [m / p for m, p in zip(measured, predicted, strict=True) if p > 0]
    under = sum(e <= ceiling for e in eff) / len(eff) if eff else math.nan
    med = median(eff)
    a = not math.isnan(rho) and rho >= rho_min
    b = not math.isnan(under) and under >= share
    c = not math.isnan(med) and med >= eff_min
    verdict = HOLDS if a and b and c else PARTLY if a and (b or c) else NOT
    return Verdict(verdict, f"rho(measured, byte ratio) = {_f(rho)} (>= {rho_min}); "
                            f"{_f(100 * under, 0)} % of cells <= {ceiling} x byte ratio "
                            f"(>= {share:.0%}); median measured/byte ratio = {_f(med)} "
                            f"(>= {eff_min}); all three: holds, rho and one: partly")


def format_overheads(max_rel_err: float, measured_be: Mapping[str, float],
                     formula_be: Mapping[str, float], tol_bytes: float = 1e-3,
                     tol_density: float = 0.02) -> Verdict:
    """Claim 5: the byte formulas are right and give the break-even densities.

    Holds when every formula matches ``nbytes`` of the real tensors within ``tol_bytes``
    (relative) and every break-even density read off the real tensors lies within
    ``tol_density`` of the formula's; one of the two: partly.
    """
    worst = max((abs(measured_be[k] - formula_be[k]) for k in formula_be if k in measured_be),
                default=math.nan)
    bytes_ok = max_rel_err <= tol_bytes
    be_ok = not math.isnan(worst) and worst <= tol_density
    verdict = HOLDS if bytes_ok and be_ok else PARTLY if bytes_ok or be_ok else NOT
    return Verdict(verdict, f"max |formula - nbytes| / nbytes = {max_rel_err:.1e} "
                            f"(<= {tol_bytes:g}); max |break-even from nbytes - formula| = "
                            f"{_f(worst, 3)} (<= {tol_density}); both: holds, one: partly")


def imbalance(util_uniform: float, util_skewed: float, util_balanced: float,
              loss_min: float = 0.1, recover_min: float = 0.5) -> Verdict:
    """Claim 6: skewed nonzeros per row lower utilisation; balancing recovers it.

    Loss = 1 - util_skewed / util_uniform; recovered = (util_balanced - util_skewed) /
    (util_uniform - util_skewed). Holds: loss >= ``loss_min`` and recovered >= ``recover_min``;
    loss only: partly; no loss: does not hold.
    """
    loss = 1 - util_skewed / util_uniform if util_uniform > 0 else math.nan
    gap = util_uniform - util_skewed
    rec = (util_balanced - util_skewed) / gap if gap > 0 else math.nan
    has_loss = not math.isnan(loss) and loss >= loss_min
    recovers = not math.isnan(rec) and rec >= recover_min
    verdict = HOLDS if has_loss and recovers else PARTLY if has_loss else NOT
    return Verdict(verdict, f"simulated utilisation loss from skew = {_f(100 * loss, 0)} % "
                            f"(>= {loss_min:.0%}); balancing recovers {_f(100 * rec, 0)} % of "
                            f"it (>= {recover_min:.0%}); both: holds, loss only: partly")


def energy_tracks_bytes(dram_share: float, energy_ratio: float, bytes_ratio: float,
                        mac_ratio: float, share_min: float = 0.5) -> Verdict:
    """Claim 7: DRAM dominates a batch-1 FC layer's energy; sparse saving tracks bytes.

    Holds when DRAM's share of the dense layer's energy is >= ``share_min`` and the sparse /
    dense energy ratio lies nearer the DRAM-bytes ratio than the MAC ratio; one: partly.
    """
    dominated = dram_share >= share_min
    tracks = abs(energy_ratio - bytes_ratio) < abs(energy_ratio - mac_ratio)
    verdict = HOLDS if dominated and tracks else PARTLY if dominated or tracks else NOT
    return Verdict(verdict, f"DRAM share of dense energy = {_f(100 * dram_share, 0)} % "
                            f"(>= {share_min:.0%}); energy ratio {_f(energy_ratio, 3)} vs bytes "
                            f"ratio {_f(bytes_ratio, 3)} and MAC ratio {_f(mac_ratio, 3)}: "
                            f"nearer bytes: {'yes' if tracks else 'no'}; both: holds, one: partly")


def all_products_faster(speedups: Mapping[str, float], density: float) -> Verdict:
    """Claim 8: a sparse training step gains only if all three products beat dense.

    Holds when all three products beat their dense equivalents at ``density``; some: partly;
    none: does not hold.
    """
    won = [p for p, s in speedups.items() if s > 1]
    n = len(speedups)
    verdict = HOLDS if n and len(won) == n else PARTLY if won else NOT
    parts = ", ".join(f"{p} {s:.2f}x" for p, s in speedups.items())
    return Verdict(verdict, f"at density {density:g}: {parts}; {len(won)} of {n} beat dense "
                            f"(all: holds; some: partly; none: does not hold)")


def agreement(rho: float, ratio: float, rho_min: float = 0.8, lo: float = 0.5,
              hi: float = 2.0) -> Verdict:
    """Simulator vs kernels for one format: ranks agree (rho >= ``rho_min``) and the geometric
    mean of measured / simulated speedup lies in ``[lo, hi]``: holds; one: partly."""
    ranks_ok = not math.isnan(rho) and rho >= rho_min
    scale_ok = not math.isnan(ratio) and lo <= ratio <= hi
    verdict = HOLDS if ranks_ok and scale_ok else PARTLY if ranks_ok or scale_ok else NOT
    return Verdict(verdict, f"rho = {_f(rho)} (>= {rho_min}), measured/simulated = "
                            f"{_f(ratio)} (in [{lo}, {hi}])")
