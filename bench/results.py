"""``python -m bench.results``: regenerate ``bench/RESULTS.md``, the current tables per CPU.

Each benchmark writes ``bench/out/<cpu>-<simd>/<report>.json`` and a markdown table with a
machine header. This gathers them, one section per CPU and SIMD level, each report's table as
its benchmark wrote it, and above them the targets (``bench/targets.py``) evaluated again on
the stored JSONs: met or missed, per machine and report. The file is generated: change a
benchmark or a target, rerun, regenerate. History is git's (``git log -p bench/RESULTS.md``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench import targets
from bench.host import OUT

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
MAX_MISSED = 6  # missed cells listed per target in the summary (the rest are counted)

# Reports in reading order: (file stem, title, command that regenerates it).
REPORTS = [
    ("team", "Thread mechanism", "python -m bench.team"),
    ("kernels_cpu", "Kernels, W 4096 x 4096", "python -m bench.kernels"),
    ("layers", "Real layer sizes, per call, bf16, training", "python -m bench.layers"),
    ("models", "Hugging Face models end to end", "python -m bench.models"),
    ("dst_speed", "Dynamic sparse training, speed and memory", "python -m bench.dst --speed"),
    ("load", "Under load, interleaved, serving", "python -m bench.load"),
    ("panel", "Load sparse, compute dense: wide bitmap and N:M", "python -m bench.panel"),
    ("int8", "Sparse + int8 values against torch's int8 weight-only product",
     "python -m bench.int8"),
    ("models_w8a8", "Llama, int8 weights: W8A8 prefill against W8A16",
     "python -m bench.models --no-compile --models llama --dtypes bfloat16 --report models_w8a8 "
     "--variants 'dense,int8 dense,bitmap 0.5 int8,bitmap 0.5 int8 W8A8,2:4 int8,"
     "2:4 int8 W8A8,bsr 32x32 0.3 int8,bsr 32x32 0.3 int8 W8A8'"),
    ("models_int8_decode", "Llama, int8 weights: decode after the shuffle SpMV",
     "python -m bench.models --no-compile --models llama --dtypes bfloat16 --prompt 8 "
     "--report models_int8_decode --variants 'dense,int8 dense,bitmap 0.5 int8,2:4 int8,"
     "csr 0.3 int8,bsr 32x32 0.3 int8'"),
    ("kernels_cuda", "Triton kernels on CUDA", "python -m bench.kernels --device cuda"),
    ("cuda", "Triton kernels on an NVIDIA GPU: bf16 and int8 values per layout against cuBLAS",
     ".ci/cuda.sh (python -m bench.cuda --n 1 16 --shapes 4096x4096 14336x4096)"),
]

# The tables of machines not measured since the reports became data (in git's history).
EARLIER = """\
## Earlier machines

Sessions 1-4 kept a diary in this file. Their tables, for the machines not measured since, are
in git: `git show 8a4f66b:bench/RESULTS.md` (AMD EPYC Zen 5, AVX-512 and its AVX2 path: the
kernel, layer, bf16, training and load tables of sessions 2-4; the first Intel Xeon session's
kernel table, claims report and simulator speed).
"""


def _stored_checks(stem: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's targets: from ``bench/targets.py`` where it has them, else as the
    benchmark stored them (``bench.load``'s and ``bench.dst``'s own checks)."""
    checks = targets.check(stem, data)
    if checks:
        return checks
    stored = data.get("targets")
    if isinstance(stored, dict):  # bench.dst --speed: {description: met}
        return [{"target": k, "met": bool(v)} for k, v in stored.items()]
    if isinstance(stored, list):  # bench.load: condition, row, what, value, limit, passed;
        # targets.check's own (a report under another stem, e.g. models_w8a8): target, cell
        return [{"target": c.get("target") or
                 f"{c.get('condition', '')} {c.get('what', '')}".strip(),
                 "cell": c.get("cell", c.get("row", "")),
                 "met": bool(c.get("passed", c.get("met"))),
                 **({"value": c["value"]} if isinstance(c.get("value"), (int, float)) else {})}
                for c in stored]
    return []


def machines(out: Path = OUT) -> list[Path]:
    """The ``bench/out/<cpu>-<simd>`` folders that hold at least one report."""
    return sorted(p for p in out.iterdir()
                  if p.is_dir() and any((p / f"{s}.json").exists() for s, _, _ in REPORTS))


def _machine_line(folder: Path) -> str:
    for stem, _, _ in REPORTS:
        md = folder / f"{stem}.md"
        if md.exists():
            for line in md.read_text().splitlines():
                if line.startswith("Machine:"):
                    return line.removeprefix("Machine:").strip()
    return folder.name


def _body(md: str) -> str:
    """A report's markdown without its machine line, its headings two levels down."""
    out = []
    for line in md.splitlines():
        if line.startswith("Machine:"):
            continue
        if line.startswith("#"):
            line = "###" + line
        out.append(line)
    return "\n".join(out).strip()


def generate(out: Path = OUT) -> str:
    """The text of ``bench/RESULTS.md`` from the reports under ``out``."""
    folders = machines(out)
    summary = ["| machine | report | target | met | missed (cells) |", "|---|---|---|---|---|"]
    sections = []
    for folder in folders:
        sec = [f"## {folder.name}", "", f"Machine: {_machine_line(folder)}", ""]
        for stem, title, command in REPORTS:
            js, md = folder / f"{stem}.json", folder / f"{stem}.md"
            if not js.exists():
                continue
            data = json.loads(js.read_text())
            by_target: dict[str, list[dict[str, Any]]] = {}
            for c in _stored_checks(stem, data):
                by_target.setdefault(c["target"], []).append(c)
            for what, cs in by_target.items():
                missed = [(c.get("cell", "") or "-")
                          + (f" ({c['value']:.2f})" if "value" in c else "")
                          for c in cs if not c["met"]]
                shown = ", ".join(missed[:MAX_MISSED]) + (
                    f" (+{len(missed) - MAX_MISSED} more)" if len(missed) > MAX_MISSED else "")
                summary.append(f"| {folder.name} | {stem} | {what} | {len(cs) - len(missed)} "
                               f"of {len(cs)} | {shown or '-'} |")
            sec += [f"### {title} (`{command}`)", ""]
            if md.exists():
                sec += [_body(md.read_text()), ""]
        sections.append("\n".join(sec))
    head = [
        "# Results",
        "",
        "Generated by `python -m bench.results` from `bench/out/<cpu>-<simd>/*.json` and `.md`,",
        "which the benchmarks write (each names the CPU: vendor, model, features, SIMD level).",
        "Do not edit by hand: rerun a benchmark, then regenerate. Targets are data",
        "(`bench/targets.py`), evaluated again here on the stored figures.",
        "A folder `<cpu>-avx2` is sparse_ops' AVX2 kernels on an AVX-512 CPU beside torch's",
        "own AVX-512 kernels (`SPARSE_OPS_SIMD=avx2`); `<cpu>-avx2-torch-avx2` lowers torch too",
        "(`ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2`, and",
        "`SPARSE_OPS_INT8_DOT=madd`): what an AVX2-only CPU such as AMD Zen 3 runs, on this core.",
        "" if any((f / "kernels_cuda.json").exists() or (f / "cuda.json").exists()
                  for f in folders) else
        "\nNo CUDA figures yet: no session has had a GPU for the Triton kernels.\n",
        "## Targets",
        "",
        *summary,
        "",
    ]
    return "\n".join(head) + "\n" + "\n\n".join(sections) + "\n\n" + EARLIER


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT, help="the reports' folder (bench/out)")
    ap.add_argument("--write", type=Path, default=RESULTS, help="the file to write")
    args = ap.parse_args(argv)
    text = generate(args.out)
    args.write.write_text(text)
    print(f"wrote {args.write} ({len(text.splitlines())} lines, "
          f"{len(machines(args.out))} machines)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
