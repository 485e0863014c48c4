"""The repository's ``kernels/`` and ``simulator/`` folders are not top-level packages.

They install as ``sparse_ops.kernels`` and ``sparse_accel_sim``. When the repository root is
on ``sys.path`` (``python -m bench.x`` from the root, pytest's rootdir), a top-level lookup
of ``kernels`` would find the folder instead of Hugging Face's ``kernels`` package, which
``transformers`` probes by that name (``importlib.util.find_spec("kernels")``) and imports.
``hide_repo_folders`` resolves those names past the repository root: to the installed package
of that name if there is one, else to nothing.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = ("kernels", "simulator")


def _is_root(entry: str) -> bool:
    return os.path.abspath(entry or os.getcwd()) == ROOT


def hide_repo_folders() -> None:
    """Bind each of ``NAMES`` in ``sys.modules`` to the package of that name found outside the
    repository root, or to None (not importable) when there is none."""
    for name in NAMES:
        if name in sys.modules:
            continue
        if not any(_is_root(p) for p in sys.path):
            continue
        elsewhere = [p for p in sys.path if not _is_root(p)]
        spec = importlib.machinery.PathFinder.find_spec(name, elsewhere)
        if spec is None:
            sys.modules[name] = None  # type: ignore[assignment]  (find_spec answers None)
        else:
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
