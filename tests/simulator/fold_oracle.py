"""The reference engine's folds as a fold table: the oracle of ``test_pattern.py``.

``simulator.reference.plan_folds`` re-derives every fold from the full mask with plain loops,
independently of ``folding.py`` and ``pattern.py``. ``reference_table`` turns its folds into
the fields of ``folding.FoldTable`` (tile ids renumbered in order of first use, so equal ids
mean the same tile on both sides), ``fast_table`` does the same to the fast engine's table,
and ``digest`` condenses a table into per-field sums and one SHA-256.

Network layers are too large to step through the reference engine in every test run, so
their tables are pinned in ``data/fold_tables.json``, generated once from the reference
engine by running this module::

    .venv/bin/python -m tests.simulator.fold_oracle      # about 3 minutes on 2 cores
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import sparse_accel_sim as sim
from sparse_accel_sim.folding import FoldTable, build_fold_table
from sparse_accel_sim.pattern import WeightPattern
from sparse_accel_sim.reference import plan_folds

DATA = Path(__file__).resolve().parent / "data" / "fold_tables.json"
# FoldTable's fields, less the array shape (rows, cols)
FIELDS = tuple(f.name for f in dataclasses.fields(FoldTable) if f.name not in ("rows", "cols"))
TILE_IDS = ("ifmap_tile", "filter_tile", "ofmap_tile")

# The network cases pinned in DATA: layers of the bundled topologies, a uniform 30 % mask
# drawn with seed 7, M cut to 64 (M only scales the counts), three arrays per mode/dataflow.
NETWORK_LAYERS = {"resnet50": [0, 2, 9, 30, 50], "bert_base": [0, 3, 20]}
NETWORK_MODES = ("dense", "block", "unstructured")
NETWORK_ARRAYS = ((16, 16, False), (32, 8, True), (7, 48, True))
NETWORK_BLOCK = (8, 4)
NETWORK_SEED = 7
NETWORK_DENSITY = 0.3
NETWORK_M = 64


def _first_use_ids(ids: list[Any]) -> np.ndarray:
    seen: dict[Any, int] = {}
    return np.array([seen.setdefault(x, len(seen)) for x in ids], dtype=np.int64)


def reference_table(arch: sim.Arch, M: int, K: int, N: int,
                    mask: np.ndarray) -> dict[str, Any]:
    """The fold table of ``X (M x K) @ W (K x N)`` as the reference engine folds it."""
    folds = plan_folds(arch, M, K, N, mask)
    R, C = arch.rows, arch.cols
    table = {
        "length": [f.length(R, C) for f in folds],
        "rows_used": [f.rows_used for f in folds],
        "cols_used": [f.cols_used for f in folds],
        "ifmap_reads": [f.reads["ifmap"] for f in folds],
        "filter_reads": [f.reads["filter"] for f in folds],
        "meta_reads": [f.reads["metadata"] for f in folds],
        "ofmap_writes": [f.ofmap_writes for f in folds],
        "ofmap_reads": [f.ofmap_reads for f in folds],
        "ifmap_tile": [f.tiles["ifmap"][0] for f in folds],
        "ifmap_tile_words": [f.tiles["ifmap"][1] for f in folds],
        "filter_tile": [f.tiles["filter"][0] for f in folds],
        "filter_tile_words": [f.tiles["filter"][1] for f in folds],
        "meta_tile_words": [f.tiles["metadata"][1] for f in folds],
        "ofmap_tile": [f.ofmap_tile for f in folds],
        "ofmap_tile_words": [f.ofmap_tile_words for f in folds],
        "ofmap_last": [f.ofmap_last for f in folds],
        "performed_macs": sum(int(f.performed.sum()) for f in folds),
        "useful_macs": sum(int(f.useful.sum()) for f in folds),
    }
    assert set(table) == set(FIELDS), "FoldTable gained a field: map it here"
    return _normal(table)


def fast_table(arch: sim.Arch, M: int, K: int, N: int,
               mask: np.ndarray | WeightPattern) -> dict[str, Any]:
    """The fast engine's fold table, in the form of ``reference_table``."""
    t = build_fold_table(arch, M, K, N, mask)
    return _normal({name: getattr(t, name) for name in FIELDS})


def _normal(table: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in FIELDS:
        value = table[name]
        if name in TILE_IDS:
            value = _first_use_ids(list(np.asarray(value).tolist()) if isinstance(
                value, np.ndarray) else value)
        out[name] = (int(value) if name.endswith("_macs")
                     else np.asarray(value, dtype=np.int64).reshape(-1))
    return out


def assert_same_table(fast: dict[str, Any], ref: dict[str, Any], where: str = "") -> None:
    """Every field equal, fold by fold (the message names the field and the first fold)."""
    for name in FIELDS:
        a, b = np.asarray(fast[name]), np.asarray(ref[name])
        if a.shape != b.shape:
            raise AssertionError(f"{where} {name}: {a.size} folds, reference {b.size}")
        bad = np.flatnonzero(a != b)
        if bad.size:
            f = int(bad[0])
            raise AssertionError(f"{where} {name}: fold {f} is {a.reshape(-1)[f]}, "
                                 f"reference {b.reshape(-1)[f]} ({bad.size} folds differ)")


def digest(table: dict[str, Any]) -> dict[str, Any]:
    """Folds, per-field sums (in ``FIELDS`` order) and a SHA-256 of every field's values."""
    h = hashlib.sha256()
    for name in FIELDS:
        h.update(name.encode())
        h.update(np.asarray(table[name], dtype="<i8").tobytes())
    return {"folds": int(np.asarray(table["length"]).size),
            "sums": [int(np.asarray(table[name]).sum()) for name in FIELDS],
            "sha256": h.hexdigest()[:32]}


def network_layers() -> list[sim.Layer]:
    out = []
    for topology, picks in NETWORK_LAYERS.items():
        layers = sim.load_topology(sim.bundled_topology(topology))
        out += [layers[i] for i in picks]
    return out


def network_mask(layer: sim.Layer) -> np.ndarray:
    return sim.synthetic_weight(layer.K, layer.N, NETWORK_DENSITY, seed=NETWORK_SEED) != 0


def network_cases(layer: sim.Layer) -> list[tuple[str, sim.Arch]]:
    """``(key, arch)`` of every pinned case of ``layer``."""
    out = []
    for mode in NETWORK_MODES:
        for df in ("os", "ws", "is"):
            for rows, cols, balance in NETWORK_ARRAYS:
                arch = sim.Arch(rows=rows, cols=cols, dataflow=df, sparsity=mode,
                                balance=balance, block=NETWORK_BLOCK)
                out.append((f"{layer.name} {mode} {df} {rows}x{cols} balance={balance}", arch))
    return out


def generate(path: Path = DATA) -> None:
    """Write the reference engine's digests of every network case to ``path``."""
    cases: dict[str, Any] = {}
    start = time.monotonic()
    for layer in network_layers():
        M = min(layer.M, NETWORK_M)
        mask = network_mask(layer)
        for key, arch in network_cases(layer):
            ref = reference_table(arch, M, layer.K, layer.N, mask)
            cases[key] = {"M": M, "K": layer.K, "N": layer.N, **digest(ref)}
            if digest(fast_table(arch, M, layer.K, layer.N, mask)) != digest(ref):
                print(f"note: the fast engine differs from the reference on {key}",
                      file=sys.stderr)
        print(f"{layer.name}: {time.monotonic() - start:.0f} s", file=sys.stderr)
    data = {"about": "fold tables of the reference engine (simulator.reference.plan_folds) "
                     "for the network cases of tests/simulator/test_pattern.py; regenerate "
                     "with: python -m tests.simulator.fold_oracle",
            "fields": list(FIELDS), "cases": cases}
    write(path, data)


def write(path: Path, data: dict[str, Any]) -> None:
    """``data`` as JSON, one case a line (small, and diffs show which cases changed)."""
    lines = ["{", f'"about": {json.dumps(data["about"])},',
             f'"fields": {json.dumps(data["fields"])},', '"cases": {']
    items = list(data["cases"].items())
    lines += [f"{json.dumps(k)}: {json.dumps(v)}" + ("," if i < len(items) - 1 else "")
              for i, (k, v) in enumerate(items)]
    lines += ["}", "}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    generate()
