"""A sweep's results on disk: a Parquet dataset, one file per finished chunk, resumable.

``ResultsStore(dir)`` holds rows keyed by their ``point_id``. Each chunk is written to a
hidden temporary file and renamed to ``part-<uuid>.parquet`` when complete (an atomic rename
on POSIX), so a driver killed at any moment leaves only whole files (plus at most one hidden
temporary, which is ignored). Reading the directory gives every stored point once; running
the same sweep again skips them. Any Parquet reader (pandas, pyarrow, DuckDB, Spark) reads
the directory as one table.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PART_GLOB = "part-*.parquet"
# Columns renamed since a results file could hold them -> their names now (Arch.weight_format
# is Arch.layout): rows read from older files come back under the current names.
FORMER_COLUMNS = {"weight_format": "layout"}
# Columns that may be None (nullable floats) whatever the first chunk holds.
FLOAT_COLUMNS = frozenset({"dram_words_per_cycle", "density", "utilization",
                           "mapping_efficiency", "ifmap_sram_kb", "filter_sram_kb",
                           "ofmap_sram_kb"})


def _column_type(key: str, values: list[Any]) -> Any:
    import pyarrow as pa

    if key in FLOAT_COLUMNS or key.endswith(("_pj", "_mm2")):
        return pa.float64()
    for v in values:
        if v is None:
            continue
        if isinstance(v, bool):
            return pa.bool_()
        if isinstance(v, int):
            return pa.int64()
        if isinstance(v, float):
            return pa.float64()
        return pa.string()
    return pa.string()


def rows_to_table(rows: list[dict[str, Any]]) -> Any:
    """A pyarrow table of dict rows (columns: the union of keys, in first-seen order)."""
    import pyarrow as pa

    keys: list[str] = []
    seen: set[str] = set()
    for r in rows:
        for k in r:
            if k not in seen:
                seen.add(k)
                keys.append(k)
    columns = {}
    for k in keys:
        values = [r.get(k) for r in rows]
        columns[k] = pa.array(values, type=_column_type(k, values))
    return pa.table(columns)


class ResultsStore:
    """Rows of a sweep in the Parquet dataset ``path`` (created if missing).

    Args:
        path: the directory.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"out={str(self.path)!r} exists and is not a directory")
        self.path.mkdir(parents=True, exist_ok=True)

    def files(self) -> list[Path]:
        """The complete chunk files, oldest first."""
        return sorted(self.path.glob(PART_GLOB), key=lambda p: (p.stat().st_mtime_ns, p.name))

    def load(self) -> dict[str, dict[str, Any]]:
        """Every stored row by ``point_id`` (a point stored twice counts once: the first).

        Columns of older files under a former name (``FORMER_COLUMNS``) are renamed."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        out: dict[str, dict[str, Any]] = {}
        for f in self.files():
            try:
                table = pq.read_table(f)
            except (pa.ArrowInvalid, OSError) as exc:
                raise ValueError(f"{f}: not a readable Parquet file: {exc}") from exc
            if "point_id" not in table.column_names:
                raise ValueError(f"{f}: no point_id column: not a simulator results file")
            renamed = [FORMER_COLUMNS.get(c, c) for c in table.column_names]
            if renamed != table.column_names and len(set(renamed)) == len(renamed):
                table = table.rename_columns(renamed)
            for row in table.to_pylist():
                out.setdefault(row["point_id"], row)
        return out

    def rows(self) -> list[dict[str, Any]]:
        """Every stored row once, ordered by the ``point`` index they were written with."""
        rows = list(self.load().values())
        rows.sort(key=lambda r: (r.get("point", 0), r["point_id"]))
        return rows

    def write_chunk(self, rows: Iterable[dict[str, Any]]) -> Path | None:
        """Store ``rows`` as one new file, atomically; ``None`` if there are none."""
        import pyarrow.parquet as pq

        rows = list(rows)
        if not rows:
            return None
        name = f"part-{uuid.uuid4().hex}.parquet"
        tmp = self.path / f".{name}.tmp"
        pq.write_table(rows_to_table(rows), tmp)
        os.replace(tmp, self.path / name)
        return self.path / name
