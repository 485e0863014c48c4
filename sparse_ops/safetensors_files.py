"""safetensors files: written with the ``safetensors`` package, read back with every byte checked.

Why a reader of our own: a checkpoint is data from elsewhere. Reading each tensor with plain
file reads into a tensor allocated for it (no memory map) keeps what a load costs exactly the
tensors it returns, and every fault is reported as a ``ValueError`` that names the file and
the tensor: a header that is not JSON, an unknown dtype, a shape and byte range that disagree,
a range past the end of a truncated file, a shard the index names outside the directory.

Layout of a file (the safetensors format): 8 bytes, the little-endian length ``n`` of a JSON
header; the header, ``{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]},
"__metadata__": {str: str}}``; then the data, each tensor's bytes at ``[begin, end)``
counted from the end of the header, row-major, little-endian.

A checkpoint is one file ``<stem>.safetensors``, or shards ``<stem>-00001-of-0000N.safetensors``
with an index ``<stem>.safetensors.index.json`` (``{"metadata": {"total_size": bytes},
"weight_map": {name: shard file}}``), as Hugging Face writes them.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

# The safetensors dtype names this reader accepts, and the torch dtype of each.
DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}
MAX_HEADER_BYTES = 100 * 2**20  # the safetensors package's own limit
DEFAULT_MAX_SHARD_BYTES = 5 * 2**30


_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(size: int | str, argument: str = "max_shard_size") -> int:
    """Bytes from an integer or a string such as ``"5GB"``, ``"500MB"``, ``"1GiB"``
    (transformers' units: KB/MB/GB decimal, KiB/MiB/GiB binary); ``ValueError`` otherwise."""
    if isinstance(size, int) and not isinstance(size, bool):
        value = size
    elif isinstance(size, str):
        text = size.strip().upper().replace(" ", "")
        digits = text.rstrip("KMGTIB")
        unit = text[len(digits):] or "B"
        try:
            value = int(float(digits) * _UNITS[unit])
        except (KeyError, ValueError):
            raise ValueError(f"{argument}: expected bytes or a size like '5GB', got {size!r}") \
                from None
    else:
        raise TypeError(f"{argument}: expected an int or a string like '5GB', got "
                        f"{type(size).__name__}")
    if value < 1:
        raise ValueError(f"{argument}: must be at least 1 byte, got {size!r}")
    return value


def shard_name(stem: str, index: int, count: int) -> str:
    """Shard ``index`` (1-based) of ``count``: ``<stem>-00001-of-00003.safetensors``."""
    return f"{stem}-{index:05d}-of-{count:05d}.safetensors"


def index_name(stem: str) -> str:
    """File name of the index of a sharded checkpoint: ``<stem>.safetensors.index.json``."""
    return f"{stem}.safetensors.index.json"


def _check_tensors(tensors: Mapping[str, torch.Tensor]) -> None:
    for name, t in tensors.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"tensors: names must be non-empty strings, got {name!r}")
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"tensors: {name} is a {type(t).__name__}, not a torch.Tensor "
                            f"(safetensors stores tensors only)")
        if t.layout != torch.strided:
            raise TypeError(f"tensors: {name} has layout {t.layout}; store its parts instead")


def write_checkpoint(
    tensors: Mapping[str, torch.Tensor],
    directory: str | os.PathLike[str],
    stem: str,
    *,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    metadata: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write ``tensors`` as ``<stem>.safetensors``, or shards plus an index past a size.

    Tensors go to shards in order; a new shard starts when the next tensor would take the
    current one past ``max_shard_bytes`` (a tensor larger than that gets a shard of its
    own). Tensors must not share memory (pass each tied tensor once); each is written
    contiguous, on CPU. Files of an earlier checkpoint of the same stem are removed first,
    so a reader never mixes two. ``metadata`` goes into every file's ``__metadata__``
    (``{"format": "pt"}`` is added, as transformers expects). Returns the written paths
    (the index last).
    """
    from safetensors.torch import save_file

    _check_tensors(tensors)
    if isinstance(max_shard_bytes, bool) or not isinstance(max_shard_bytes, int) \
            or max_shard_bytes < 1:
        raise ValueError(f"max_shard_bytes: expected a positive integer, got {max_shard_bytes!r}")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for old in [out / f"{stem}.safetensors", out / index_name(stem),
                *out.glob(f"{stem}-*-of-*.safetensors")]:
        if old.is_file():
            old.unlink()
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = t.detach().to("cpu").contiguous()
        size += nbytes
    meta = {"format": "pt", **dict(metadata or {})}
    paths: list[Path] = []
    if len(shards) == 1:
        path = out / f"{stem}.safetensors"
        save_file(shards[0], str(path), metadata=meta)
        return [path]
    weight_map: dict[str, str] = {}
    total = 0
    for i, shard in enumerate(shards, start=1):
        path = out / shard_name(stem, i, len(shards))
        save_file(shard, str(path), metadata=meta)
        paths.append(path)
        for name, t in shard.items():
            weight_map[name] = path.name
            total += t.numel() * t.element_size()
    index = out / index_name(stem)
    index.write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map},
                                indent=2) + "\n")
    paths.append(index)
    return paths


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in pairs:
        if k in out:
            raise json.JSONDecodeError(f"key {k!r} appears twice", k, 0)
        out[k] = v
    return out


class SafetensorsFile:
    """One safetensors file, its header read and checked; tensors read one by one.

    Raises ``ValueError`` naming the file (and the tensor) when the header is malformed or
    a tensor's bytes do not fit its dtype and shape or lie past the end of the file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"{self.path}: no such safetensors file")
        size = self.path.stat().st_size
        with open(self.path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ValueError(f"{self.path}: truncated: {size} bytes, shorter than the "
                                 f"8-byte header length")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER_BYTES or 8 + n > size:
                raise ValueError(f"{self.path}: header length {n} does not fit the file "
                                 f"({size} bytes): not a safetensors file, or truncated")
            raw = f.read(n)
        try:
            header = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{self.path}: the header is not JSON ({e})") from None
        if not isinstance(header, dict):
            raise ValueError(f"{self.path}: the header is a {type(header).__name__}, "
                             f"expected a JSON object")
        meta = header.pop("__metadata__", None) or {}
        if not isinstance(meta, dict):
            raise ValueError(f"{self.path}: __metadata__ must be an object of strings")
        self.metadata: dict[str, str] = {str(k): str(v) for k, v in meta.items()}
        self._data_start = 8 + n
        data_bytes = size - self._data_start
        self._entries: dict[str, tuple[torch.dtype, tuple[int, ...], int, int]] = {}
        for name, e in header.items():
            self._entries[name] = self._check_entry(name, e, data_bytes)

    def _check_entry(self, name: str, e: object, data_bytes: int
                     ) -> tuple[torch.dtype, tuple[int, ...], int, int]:
        where = f"{self.path}: tensor {name}"
        if not isinstance(e, dict):
            raise ValueError(f"{where}: header entry is not an object")
        dtype = DTYPES.get(e.get("dtype")) if isinstance(e.get("dtype"), str) else None
        if dtype is None:
            raise ValueError(f"{where}: dtype {e.get('dtype')!r} is not one of "
                             f"{sorted(DTYPES)}")
        shape = e.get("shape")
        if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise ValueError(f"{where}: shape {shape!r} is not a list of non-negative integers")
        offs = e.get("data_offsets")
        if not (isinstance(offs, list) and len(offs) == 2 and all(
                isinstance(o, int) and not isinstance(o, bool) for o in offs)):
            raise ValueError(f"{where}: data_offsets {offs!r} is not [begin, end]")
        begin, end = offs
        numel = 1
        for d in shape:
            numel *= d
        itemsize = torch.empty((), dtype=dtype).element_size()
        if not 0 <= begin <= end or end - begin != numel * itemsize:
            raise ValueError(f"{where}: data_offsets [{begin}, {end}] hold {end - begin} bytes; "
                             f"a {e.get('dtype')} tensor of shape {shape} takes "
                             f"{numel * itemsize}")
        if end > data_bytes:
            raise ValueError(f"{where}: its bytes [{begin}, {end}) lie past the end of the data "
                             f"({data_bytes} bytes): the file is truncated")
        return dtype, tuple(shape), begin, end

    def keys(self) -> list[str]:
        """The tensor names, in header order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def dtype(self, name: str) -> torch.dtype:
        return self._entries[name][0]

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entries[name][1]

    def nbytes(self, name: str) -> int:
        _, _, begin, end = self._entries[name]
        return end - begin

    def read(self, name: str) -> torch.Tensor:
        """Tensor ``name`` as stored (dtype, shape), in a CPU tensor of its own."""
        if name not in self._entries:
            raise ValueError(f"{self.path}: holds no tensor {name}")
        dtype, shape, begin, end = self._entries[name]
        buf = torch.empty(end - begin, dtype=torch.uint8)
        if end > begin:
            view = memoryview(buf.numpy())
            with open(self.path, "rb") as f:
                f.seek(self._data_start + begin)
                got = 0
                while got < end - begin:
                    k = f.readinto(view[got:])
                    if not k:
                        raise ValueError(f"{self.path}: tensor {name}: the file ends after "
                                         f"{got} of its {end - begin} bytes (truncated)")
                    got += k
        if sys.byteorder != "little" and buf.element_size() > 1:  # pragma: no cover
            raise ValueError(f"{self.path}: big-endian hosts are not supported")
        return buf.view(dtype).reshape(shape)


class Checkpoint:
    """The safetensors checkpoint of a directory: one file or shards with an index.

    ``Checkpoint(directory, stem)`` finds ``<stem>.safetensors`` or
    ``<stem>.safetensors.index.json`` (whose shard names must be plain file names in the
    directory), checks every file's header, and maps each tensor name to its file. A
    name stored in two files, or a shard the index names that does not hold the tensor,
    raises ``ValueError``.
    """

    def __init__(self, directory: str | os.PathLike[str], stem: str = "model") -> None:
        self.directory = Path(directory)
        single = self.directory / f"{stem}.safetensors"
        index = self.directory / index_name(stem)
        self.files: dict[str, SafetensorsFile] = {}
        self._where: dict[str, SafetensorsFile] = {}
        if single.is_file():
            f = SafetensorsFile(single)
            self.files[single.name] = f
            self._where = dict.fromkeys(f.keys(), f)
            return
        if not index.is_file():
            raise ValueError(f"directory: {self.directory} holds neither {single.name} nor "
                             f"{index.name}")
        try:
            data = json.loads(index.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{index}: not JSON ({e})") from None
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(weight_map, dict):
            raise ValueError(f"{index}: has no weight_map object")
        for name, fname in weight_map.items():
            if (not isinstance(fname, str) or not fname or Path(fname).name != fname
                    or fname in (".", "..")):
                raise ValueError(f"{index}: tensor {name} maps to {fname!r}, not a file name "
                                 f"in the directory")
            if fname not in self.files:
                self.files[fname] = SafetensorsFile(self.directory / fname)
            f = self.files[fname]
            if name not in f:
                raise ValueError(f"{index}: tensor {name} is mapped to {fname}, which does "
                                 f"not hold it")
            self._where[name] = f
        for fname, f in self.files.items():
            for name in f.keys():
                other = self._where.get(name)
                if other is not None and other is not f:
                    raise ValueError(f"{index}: tensor {name} is stored in both {fname} and "
                                     f"{other.path.name}")
                self._where.setdefault(name, f)

    def keys(self) -> list[str]:
        return list(self._where)

    def __contains__(self, name: object) -> bool:
        return name in self._where

    def file_of(self, name: str) -> SafetensorsFile:
        return self._where[name]

    def shape(self, name: str) -> tuple[int, ...]:
        return self._where[name].shape(name)

    def dtype(self, name: str) -> torch.dtype:
        return self._where[name].dtype(name)

    def read(self, name: str) -> torch.Tensor:
        if name not in self._where:
            raise ValueError(f"directory: {self.directory} holds no tensor {name}")
        return self._where[name].read(name)

    def read_all(self, names: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """The named tensors (default: all), each read into its own tensor."""
        return {n: self.read(n) for n in (self.keys() if names is None else names)}


def has_checkpoint(directory: str | os.PathLike[str], stem: str) -> bool:
    """Whether ``directory`` holds ``<stem>.safetensors`` or its sharded index."""
    d = Path(directory)
    return (d / f"{stem}.safetensors").is_file() or (d / index_name(stem)).is_file()
