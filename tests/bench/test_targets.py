"""Targets as data: the check reads the rows a benchmark wrote, and RESULTS.md is generated
from the stored reports with the targets evaluated again."""

from __future__ import annotations

import json
from pathlib import Path

from bench import results, targets


def _kernel_cell(n: int, fmt: str, density: float, speedup: float) -> dict:
    return {"shape": "4096x4096", "dtype": "float32", "n": n, "fmt": fmt, "density": density,
            "speedup_vs_dense": speedup}


def test_check_reads_each_matching_row_and_its_limit():
    data = {"cells": [_kernel_cell(1, "csr", 0.1, 5.2), _kernel_cell(1, "2:4", 0.5, 1.5),
                      _kernel_cell(16, "csr", 0.1, 9.0)]}  # N = 16 has no kernel target
    checks = targets.check("kernels_cpu", data)
    got = sorted((c["target"], c["met"], c["limit"]) for c in checks)
    assert got == [("N=1 2:4 0.5 >= 1.6x dense", False, 1.6),
                   ("N=1 csr 0.1 >= 5.0x dense", True, 5.0)]
    # a limit read from another column of the same row (team's p90 against t.sum()'s)
    row = {"layout": "2:4", "n": 1, "busy_p90_over_quiet": 3.0, "sum_busy_p90_over_quiet": 2.0}
    (p90,) = [c for c in targets.check("team", {"rows": [row]}) if "p90" in c["target"]]
    assert p90["limit"] == 2.0 and p90["met"] is False
    assert "NO" in targets.markdown(checks) and "met: 1 of 2" in targets.markdown(checks)


def test_results_are_generated_from_stored_reports(tmp_path: Path):
    folder = tmp_path / "some-cpu-avx2"
    folder.mkdir()
    data = {"cells": [_kernel_cell(1, "bitmap", 0.5, 1.7), _kernel_cell(512, "csr", 0.1, 3.0)]}
    (folder / "kernels_cpu.json").write_text(json.dumps(data))
    (folder / "kernels_cpu.md").write_text("Machine: Some CPU, avx2\n\n# table\n| a |\n")
    (tmp_path / "empty-cpu").mkdir()  # no report: no section
    text = results.generate(tmp_path)
    assert "## some-cpu-avx2" in text and "Machine: Some CPU, avx2" in text
    assert "empty-cpu" not in text
    assert "| some-cpu-avx2 | kernels_cpu | N=1 bitmap 0.5 >= 1.6x dense | 1 of 1 | - |" in text
    assert ("| some-cpu-avx2 | kernels_cpu | N=512 csr 0.1 >= 4.0x dense | 0 of 1 | "
            "4096x4096 (3.00) |") in text
    assert "#### table" in text  # the report's headings sit under its section
