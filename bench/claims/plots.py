"""PNG figures of the claims (matplotlib, Agg backend), one function per figure.

Each takes a claim's ``figures`` dict (see the claim modules) and a path. Measured curves are
solid, simulated dashed; speedup axes are logarithmic with a line at 1 (break-even).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _speedup_axes(ax: Any, xlabel: str = "density (fraction nonzero)") -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("speedup over dense")
    ax.grid(True, which="both", alpha=0.3)


def curves(fig: dict, path: Path, title: str, label: str) -> None:
    """Claims 1-2: speedup vs density, one colour per curve key (batch or block)."""
    f, ax = plt.subplots(figsize=(7, 4.5))
    for i, (key, c) in enumerate(fig["curves"].items()):
        col = f"C{i % 10}"
        ax.plot(c["density"], c["measured"], "o-", color=col, label=f"{label}={key} measured")
        ax.plot(c["density"], c["simulated"], "x--", color=col, alpha=0.7,
                label=f"{label}={key} simulated")
    _speedup_axes(ax)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    f.tight_layout()
    f.savefig(path, dpi=110)
    plt.close(f)


def nm_bars(fig: dict, path: Path) -> None:
    """Claim 3: measured and simulated 2:4 speedup per batch."""
    f, ax = plt.subplots(figsize=(6, 4))
    xs = range(len(fig["batches"]))
    ax.bar([x - 0.2 for x in xs], fig["measured"], 0.4, label="2:4 kernel, measured")
    ax.bar([x + 0.2 for x in xs], fig["simulated"], 0.4, label="2:4 array, simulated")
    ax.axhline(2.0, color="k", ls=":", lw=1, label="2x math throughput")
    ax.axhspan(1.1, 1.7, color="green", alpha=0.1, label="reported end-to-end 1.1-1.7x")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks(list(xs), [f"B={b}" for b in fig["batches"]])
    ax.set_ylabel("speedup over dense")
    ax.set_title("Claim 3: 2:4 vs dense")
    ax.legend(fontsize=7)
    f.tight_layout()
    f.savefig(path, dpi=110)
    plt.close(f)


def bytes_scatter(fig: dict, path: Path) -> None:
    """Claim 4: batch-1 speedup against the byte ratio, measured and simulated."""
    f, ax = plt.subplots(figsize=(6, 5))
    fams: dict[str, list[dict]] = {}
    for c in fig["cells"]:
        fams.setdefault("N:M" if ":" in c["fmt"] else c["fmt"], []).append(c)
    for i, (fam, cs) in enumerate(fams.items()):
        col = f"C{i % 10}"
        ax.scatter([c["byte_ratio"] for c in cs], [c["measured"] for c in cs], color=col,
                   label=f"{fam} measured")
        ax.scatter([c["byte_ratio"] for c in cs], [c["simulated"] for c in cs], color=col,
                   marker="x", alpha=0.7, label=f"{fam} simulated")
    lim = [min(c["byte_ratio"] for c in fig["cells"]) / 1.5,
           max(c["byte_ratio"] for c in fig["cells"]) * 1.5]
    ax.plot(lim, lim, "k:", lw=1, label="speedup = byte ratio")
    _speedup_axes(ax, "byte ratio (dense bytes / sparse bytes)")
    ax.set_title("Claim 4: batch-1 speedup vs bytes")
    ax.legend(fontsize=7)
    f.tight_layout()
    f.savefig(path, dpi=110)
    plt.close(f)


def storage_lines(fig: dict, path: Path) -> None:
    """Claim 5: bytes / dense bytes against density, formulas and real nbytes."""
    f, ax = plt.subplots(figsize=(7, 4.5))
    for i, (name, s) in enumerate(fig["series"].items()):
        col = f"C{i % 10}"
        ax.plot(s["density"], s["formula"], "-", color=col, label=f"{name} formula")
        ax.plot(s["density"], s["real"], "o", color=col, ms=3, label=f"{name} nbytes")
    ax.scatter([r["density"] for r in fig["nm"]], [r["real"] for r in fig["nm"]], marker="s",
               color="k", label="N:M nbytes")
    for r in fig["nm"]:
        ax.annotate(r["nm"], (r["density"], r["real"]), fontsize=7, xytext=(3, -8),
                    textcoords="offset points")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xlabel("density (fraction nonzero)")
    ax.set_ylabel("bytes / dense fp32 bytes")
    ax.set_title("Claim 5: storage overhead of formats")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    f.tight_layout()
    f.savefig(path, dpi=110)
    plt.close(f)


def imbalance_bars(fig: dict, path: Path) -> None:
    """Claim 6: simulated utilisation and kernel time, uniform vs power-law rows."""
    f, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.8))
    u = fig["sim_utilization"]
    keys = ["uniform", "powerlaw", "uniform_balanced", "powerlaw_balanced"]
    a1.bar(range(4), [u[k] for k in keys], color=["C0", "C1", "C0", "C1"],
           hatch=None)
    a1.set_xticks(range(4), ["uniform", "power-law", "uniform\nbalanced",
                             "power-law\nbalanced"], fontsize=7)
    a1.set_ylabel("simulated utilisation")
    a1.set_title(f"simulator, B={fig['batch']}")
    k = fig["kernel_seconds"]
    a2.bar(range(4), [k["uniform_b1"] * 1e3, k["powerlaw_b1"] * 1e3, k["uniform"] * 1e3,
                      k["powerlaw"] * 1e3], color=["C0", "C1", "C0", "C1"])
    a2.set_xticks(range(4), ["uniform\nB=1", "power-law\nB=1", f"uniform\nB={fig['batch']}",
                             f"power-law\nB={fig['batch']}"], fontsize=7)
    a2.set_ylabel("CSR kernel time (ms)")
    a2.set_title("kernel")
    f.suptitle("Claim 6: load imbalance")
    f.tight_layout()
    f.savefig(path, dpi=110)
    plt.close(f)


def energy_bars(fig: dict, path: Path) -> None:
    """Claim 7: simulated energy split (DRAM, compute, rest) relative to dense."""
    f, ax = plt.subplots(figsize=(6.5, 4))
    bars = [("dense", fig["dense"])] + [(r["fmt"], r["sparse"]) for r in fig["formats"]]
    bottom = [0.0] * len(bars)
    total0 = fig["dense"]["total"]
    for comp, col in (("dram", "C3"), ("compute", "C0"), ("other", "C7")):
        vals = [b[1][comp] / total0 for b in bars]
        ax.bar(range(len(bars)), vals, bottom=bottom, color=col, label=comp)
        bottom = [x + v for x, v in zip(bottom, vals, strict=True)]
    ax.set_xticks(range(len(bars)), [b[0] for b in bars])
    ax.set_ylabel("energy / dense total (simulated)")
    ax.set_title("Claim 7: energy of a batch-1 FC layer")
    ax.legend(fontsize=8)
    f.tight_layout()
    f.savefig(path, dpi=110)
    plt.close(f)


def training_bars(fig: dict, path: Path) -> None:
    """Claim 8: speedup of each training product, measured and simulated."""
    rows = fig["rows"]
    prods = ["spmm", "spmm_t", "sddmm"]
    f, ax = plt.subplots(figsize=(8, 4))
    width = 0.12
    for j, p in enumerate(prods):
        xs = [i + (j - 1) * 2 * width for i in range(len(rows))]
        ax.bar([x - width / 2 for x in xs], [r["measured"][p] for r in rows], width,
               color=f"C{j}", label=f"{p} measured")
        ax.bar([x + width / 2 for x in xs], [r["simulated"][p] for r in rows], width,
               color=f"C{j}", alpha=0.45, hatch="//", label=f"{p} simulated")
    ax.set_yscale("log")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks(range(len(rows)), [f"{r['fmt']}\nd={r['density']:g}" for r in rows],
                  fontsize=8)
    ax.set_ylabel("speedup over dense")
    ax.set_title(f"Claim 8: the three training products, B={fig['batch']}")
    ax.legend(fontsize=6, ncol=3)
    f.tight_layout()
    f.savefig(path, dpi=110)
    plt.close(f)


def agreement_scatter(cells: list[dict], path: Path) -> None:
    """Measured vs simulated speedup of every forward cell, by format family."""
    f, ax = plt.subplots(figsize=(6, 5))
    fams: dict[str, list[dict]] = {}
    for c in cells:
        fams.setdefault("N:M" if c["layout"] == "nm" else c["fmt"], []).append(c)
    for i, (fam, cs) in enumerate(sorted(fams.items())):
        ax.scatter([c["sim_speedup"] for c in cs], [c["speedup"] for c in cs], s=14,
                   color=f"C{i % 10}", label=fam)
    vals = [c["sim_speedup"] for c in cells] + [c["speedup"] for c in cells]
    lim = [min(vals) / 1.3, max(vals) * 1.3]
    ax.plot(lim, lim, "k:", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("simulated speedup (preset)")
    ax.set_ylabel("measured speedup (kernels)")
    ax.set_title("Simulator against kernels (forward products)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    f.tight_layout()
    f.savefig(path, dpi=110)
    plt.close(f)


def draw_all(results: list, cells: list[dict], out: Path) -> list[str]:
    """Draw every claim's figure and the agreement scatter into ``out``; return file names."""
    by_num = {r.number: r for r in results}
    todo = {
        1: lambda fig, p: curves(fig, p, "Claim 1: CSR vs dense by batch", "B"),
        2: lambda fig, p: curves(fig, p, f"Claim 2: block size at B={fig['batch']}", "block"),
        3: nm_bars, 4: bytes_scatter, 5: storage_lines, 6: imbalance_bars, 7: energy_bars,
        8: training_bars,
    }
    written = []
    for num, fn in todo.items():
        r = by_num.get(num)
        if r is None or not r.plots:
            continue
        fn(r.figures, out / r.plots[0])
        written.append(r.plots[0])
    fwd = [c for c in cells if c["product"] == "spmm" and c["speedup"] is not None
           and c["pattern"] == "magnitude"]
    if fwd:
        agreement_scatter(fwd, out / "agreement.png")
        written.append("agreement.png")
    return written
