"""``bench/out/dst.md`` and one PNG per task from a study's runs."""

from __future__ import annotations

from pathlib import Path

from .verdict import TOL, aggregate, ranking, verdict


def _cell(s) -> str:
    return f"{100 * s[0]:.1f} ± {100 * s[1]:.1f}" if s else "–"


def plot(result: dict, task: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg, agg = result["config"], aggregate(result["runs"])
    ds = sorted(cfg["densities"])
    fig, axes = plt.subplots(1, len(cfg["growth"]), figsize=(6 * len(cfg["growth"]), 4.2),
                             squeeze=False)
    for ax, grow in zip(axes[0], cfg["growth"], strict=True):
        for c in cfg["criteria"]:
            pts = [agg.get((task, grow, c, d)) for d in ds]
            ax.errorbar(ds, [100 * p[0] for p in pts], yerr=[100 * p[1] for p in pts],
                        marker="o", capsize=2, label=c)
        st = [agg.get((task, None, "static", d)) for d in ds]
        ax.plot(ds, [100 * p[0] for p in st], "k--", label="static")
        dense = agg.get((task, None, "dense", None))
        if dense:
            ax.axhline(100 * dense[0], color="grey", ls=":", label="dense")
        ax.set_xscale("log")
        ax.set_xlabel("density")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{task}: {grow} growth")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(result: dict, out_dir: Path, speeds: list[dict] | None = None) -> Path:
    cfg, agg = result["config"], aggregate(result["runs"])
    ds = sorted(cfg["densities"], reverse=True)
    lines = [
        "# Dynamic sparse training: where to prune (Fantastic Weights, reproduced small)",
        "",
        f"MLP in → {cfg['hidden']} → {cfg['hidden']} → classes, every layer CSR "
        f"(`{cfg['distribution']}` densities), SGD momentum 0.9 lr {cfg['lr']} (cosine), "
        f"{cfg['steps']} steps of batch {cfg['batch']}; DST every {cfg['update_every']} steps, "
        f"cosine drop fraction {cfg['drop_fraction']}, mask frozen after "
        f"{int(cfg['stop_frac'] * cfg['steps'])} steps. Seeds {list(cfg['seeds'])} (model init "
        f"and batch order; the data split is fixed). {len(result['runs'])} runs in "
        f"{result['seconds']:.0f} s on {cfg['threads']} threads. Accuracy: test, % mean ± sd "
        f"over seeds.",
        "",
    ]
    verdicts = {}
    for task in cfg["tasks"]:
        dense = agg.get((task, None, "dense", None))
        lines += [f"## {task}", "", f"Dense baseline: {_cell(dense)}", ""]
        for grow in cfg["growth"]:
            lines += [f"### {grow} growth", "",
                      "| criterion | " + " | ".join(f"d={d}" for d in ds) + " |",
                      "|---|" + "---|" * len(ds)]
            for c in cfg["criteria"]:
                lines.append(f"| {c} | " + " | ".join(_cell(agg.get((task, grow, c, d)))
                                                       for d in ds) + " |")
            lines.append("| *static* | " + " | ".join(_cell(agg.get((task, None, "static", d)))
                                                      for d in ds) + " |")
            lines += ["", "Ranking per density (best first):", ""]
            for d in ds:
                rank = ranking(agg, task, grow, d, cfg["criteria"])
                lines.append(f"- d={d}: " + " > ".join(f"{c} ({100 * s[0]:.1f})"
                                                       for c, s in rank))
            v = verdict(agg, task, grow, cfg["densities"], cfg["criteria"])
            verdicts[(task, grow)] = v
            lines += [""] + _verdict_lines(v) + [""]
        lines += [f"![{task}](dst_{task}.png)", ""]
        plot(result, task, out_dir / f"dst_{task}.png")
    lines += ["## Verdict", "",
              "Headline (Nowak et al. 2023): *criteria perform alike at high density; magnitude "
              "is best or tied at the lowest densities.* Tied: means within "
              f"max(2·SE of the difference, {100 * TOL:.1f} points).", ""]
    for (task, grow), v in verdicts.items():
        word = "SUPPORTED" if v["supported"] else "NOT SUPPORTED"
        lines.append(f"- {task}, {grow} growth: **{word}**"
                     f" (alike at high density: {v['alike_at_high']}; magnitude best or tied at "
                     f"low density: {v['magnitude_at_low']})")
    n_sup = sum(v["supported"] for v in verdicts.values())
    lines += ["", f"Overall: supported in {n_sup} of {len(verdicts)} task × growth settings.", ""]
    for sp in sorted(speeds or [], key=lambda sp: sp.get("threads", 2), reverse=True):
        lines += speed_lines(sp)
    path = out_dir / "dst.md"
    path.write_text("\n".join(lines))
    return path


def _verdict_lines(v: dict) -> list[str]:
    out = []
    for d, h in v["high"].items():
        out.append(f"- high density {d}: spread {100 * h['spread']:.1f} points; not tied with "
                   f"the best ({h['best']}): {h['not_tied'] or 'none'}")
    for d, low in v["low"].items():
        out.append(f"- low density {d}: best {low['best']}; magnitude ranks "
                   f"{low['magnitude_rank']}, {100 * (low['gap'] or 0):.1f} points behind, "
                   f"{'tied' if low['magnitude_tied'] else 'not tied'}")
    return out


def speed_lines(sp: dict) -> list[str]:
    load = sp.get("load_average")
    lines = [f"## Speed and memory ({sp.get('threads', 2)} threads)", "", sp["note"] + (
        f" Load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min)."
        if load else ""), "",
             "| mode | step (ms) | vs dense | vs masked dense | DST update share | "
             "training memory (MB) | vs dense | before the first update (MB) | vs dense |",
             "|---|---|---|---|---|---|---|---|---|"]
    dense, masked = sp["modes"]["dense"], sp["modes"].get("masked_0.05")
    for name, r in sp["modes"].items():
        ref_m = sp["modes"].get("masked_" + name.split("_")[-1], masked)
        lines.append(
            f"| {name} | {r['step_ms']:.2f} | {dense['step_ms'] / r['step_ms']:.2f}× | "
            f"{ref_m['step_ms'] / r['step_ms']:.2f}× | "
            f"{100 * r['update_share']:.1f} % | {r['train_mb']:.1f} | "
            f"{r['train_mb'] / dense['train_mb']:.2f}× | {r.get('steps_only_mb', 0):.1f} | "
            f"{r.get('steps_only_mb', 0) / max(dense.get('steps_only_mb', 1), 1e-9):.2f}× |"
        )
    big = sp.get("big")
    if big:
        lines += ["", f"8192 × 8192 at density 0.01: one update step {big['update_s']:.2f} s; "
                  f"largest tensor allocated during it {big['largest']:,} elements "
                  f"({100 * big['largest'] / big['dense']:.2f} % of the dense "
                  f"{big['dense']:,}); RSS growth during the update {big['rss_mb']:.1f} MB "
                  f"(dense fp32 weight: {big['dense'] * 4 / 2**20:.0f} MB)."]
    lines += ["", "Targets: " + "; ".join(f"{k}: {'met' if v else 'NOT met'}"
                                         for k, v in sp["targets"].items()), ""]
    return lines
