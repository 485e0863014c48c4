"""``python -m sparse_accel_sim run|sweep`` smoke tests."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from sparse_accel_sim.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_run_gemm_writes_csv_json(tmp_path, capsys):
    out_csv, out_json = tmp_path / "r.csv", tmp_path / "r.json"
    rc = main(["run", "--gemm", "256,512,256", "--rows", "32", "--cols", "32",
               "--dataflow", "ws", "--bandwidth", "8", "--csv", str(out_csv),
               "--json", str(out_json)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "total_cycles" in text and "TOTAL" in text
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["name"] for r in rows] == ["gemm", "TOTAL"]
    data = json.loads(out_json.read_text())
    assert data["arch"]["dataflow"] == "ws"
    assert data["total"]["total_cycles"] == int(rows[1]["total_cycles"])


def test_run_topology_and_config(tmp_path, capsys):
    cfg = tmp_path / "a.cfg"
    cfg.write_text("[general]\nrun_name = t\n[architecture_presets]\nArrayHeight: 16\n"
                   "ArrayWidth: 16\nIfmapSramSzkB: 32\nFilterSramSzkB: 32\nOfmapSramSzkB: 32\n"
                   "Dataflow: os\nBandwidth: 16\n[run_presets]\nInterfaceBandwidth: USER\n")
    topo = tmp_path / "t.csv"
    topo.write_text("Layer Name, M, N, K,\nfc1, 1, 1024, 512,\nfc2, 1, 10, 1024,\n")
    out = tmp_path / "t.json"
    rc = main(["run", "--config", str(cfg), "--topology", str(topo), "--sparsity",
               "unstructured", "--density", "0.25", "--balance", "true", "--json", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert [x["name"] for x in data["layers"]] == ["fc1", "fc2"]
    assert data["arch"]["dram_words_per_cycle"] == 16 and data["arch"]["balance"] is True
    assert data["total"]["stall_cycles"] > 0


def test_run_trace_and_errors(tmp_path, capsys):
    tr = tmp_path / "trace.csv"
    assert main(["run", "--gemm", "8,8,8", "--rows", "4", "--cols", "4", "--trace",
                 str(tr)]) == 0
    assert tr.read_text().startswith("cycle,")
    assert main(["run", "--gemm", "8,8", "--rows", "4"]) == 2
    assert "M,K,N" in capsys.readouterr().err
    assert main(["run", "--gemm", "8,8,8", "--rows", "0"]) == 2
    assert "rows" in capsys.readouterr().err


def test_sweep_writes_csv_json(tmp_path, capsys):
    out_csv, out_json = tmp_path / "s.csv", tmp_path / "s.json"
    rc = main(["sweep", "--rows", "8,16", "--cols", "8,16", "--dataflow", "os,ws",
               "--bandwidth", "none,4", "--gemm", "128,256,64", "--processes", "2",
               "--no-progress", "--csv", str(out_csv), "--json", str(out_json), "--top", "3"])
    assert rc == 0
    assert "16 design points" in capsys.readouterr().out
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 16 and len(json.loads(out_json.read_text())) == 16


def test_sweep_grid_yaml_bundled_topology(tmp_path, capsys):
    grid = tmp_path / "g.yaml"
    grid.write_text("rows: [16, 32]\nsparsity: [dense, nm]\n")
    rc = main(["sweep", "--grid", str(grid), "--topology", "resnet50", "--processes", "1",
               "--no-progress", "--sort", "energy_total_pj"])
    assert rc == 0
    assert "4 design points, 54 layer(s)" in capsys.readouterr().out


def test_module_entry_point(tmp_path):
    out = tmp_path / "o.csv"
    proc = subprocess.run([sys.executable, "-m", "simulator", "run", "--gemm", "64,64,64",
                           "--csv", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.exists() and "TOTAL" in proc.stdout


def test_sweep_space_out_then_pareto_plot(tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("arch:\n  rows: [4, 8]\n  dataflow: [os, ws]\nsparsity:\n"
                     "  - mode: dense\n  - mode: unstructured\n    density: [0.3]\n")
    out = tmp_path / "results"
    args = ["sweep", "--space", str(space), "--gemm", "32,64,32", "--processes", "1",
            "--no-progress", "--out", str(out)]
    assert main(args) == 0
    assert "8 design points" in capsys.readouterr().out
    assert main(args) == 0  # resumed: every point read back from the results
    assert "8 design points" in capsys.readouterr().out
    png = tmp_path / "front.png"
    assert main(["pareto", str(out), "--plot", str(png), "--csv", str(tmp_path / "f.csv")]) == 0
    text = capsys.readouterr().out
    assert "of 8 points on the front" in text
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["sweep", "--space", str(space), "--search", "6", "--chunk", "3",
                 "--gemm", "32,64,32", "--processes", "1", "--no-progress"]) == 0
    assert "6 design points" in capsys.readouterr().out


def test_sweep_space_errors(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("arch:\n  rows: [4, -1]\n")
    assert main(["sweep", "--space", str(bad), "--gemm", "8,8,8", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: field 'arch.rows'" in err
    assert main(["sweep", "--rows", "4", "--gemm", "8,8,8", "--address", "tcp://x:1"]) == 2
    assert "--executor dask" in capsys.readouterr().err
    assert main(["pareto", str(tmp_path / "none")]) == 2
    assert "no such results directory" in capsys.readouterr().err
