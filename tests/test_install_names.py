"""The names the project puts on ``sys.path`` are its own.

The wheel's top-level packages come from ``setup.py`` (read here through ``egg_info``, which
computes the same package list without compiling); ``.ci/wheel_check.sh`` checks the installed
wheel's files too. The development install (``make build``) links the same two names into a
folder on the venv's path; from any other directory, the repository's generic folder names
(``kernels``, ``simulator``, ``bench``, ``tests``) must not resolve into the repository.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OWN = {"sparse_ops", "sparse_accel_sim"}


def test_wheel_top_level_names_are_the_projects_own(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path)],
                   cwd=ROOT, check=True, capture_output=True)
    (info,) = tmp_path.glob("*.egg-info")
    top = set((info / "top_level.txt").read_text().split())
    assert top == OWN, top
    sources = (info / "SOURCES.txt").read_text().split()
    # The Triton kernels ship inside sparse_ops; the simulator's data tables ship with it.
    assert "sparse_ops/kernels/csr.py" in sources
    assert any(s.startswith("simulator/") and s.endswith(".yaml") for s in sources), sources


def test_dev_install_claims_no_generic_name(tmp_path: Path) -> None:
    probe = (
        "import importlib.util as u, json\n"
        "names = ['kernels', 'simulator', 'bench', 'tests', 'sparse_ops', 'sparse_accel_sim']\n"
        "spec = {n: u.find_spec(n) for n in names}\n"
        "print(json.dumps({n: (s.origin if s else None) for n, s in spec.items()}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, check=True,
                         capture_output=True, text=True).stdout
    found = json.loads(out)
    for name in ("kernels", "simulator", "bench", "tests"):
        origin = found[name]
        assert origin is None or not Path(origin).resolve().is_relative_to(ROOT), (name, origin)
    for name in OWN:
        assert found[name] is not None, name
    assert Path(found["sparse_accel_sim"]).resolve().parent == ROOT / "simulator"
