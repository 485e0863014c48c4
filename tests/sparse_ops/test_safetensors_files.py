"""safetensors checkpoints: written by the safetensors package (single file or shards with an
index), read back by our checked reader; the real package reads what we write; every kind of
damage is a ValueError naming the file and the tensor."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors.torch import load_file, save_file

from sparse_ops.safetensors_files import (
    Checkpoint,
    SafetensorsFile,
    has_checkpoint,
    index_name,
    parse_size,
    write_checkpoint,
)
from tests.helpers import draw_seed


def tensors(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "a.weight": torch.randn(37, 53, generator=g),
        "a.bias": torch.randn(37, generator=g, dtype=torch.float64),
        "b.values": torch.randn(101, generator=g).to(torch.bfloat16),
        "b.half": torch.randn(3, 5, 7, generator=g).half(),
        "b.bitmap": torch.randint(0, 256, (9, 16), generator=g, dtype=torch.uint8),
        "b.offsets": torch.randint(-2**31, 2**31 - 1, (10,), generator=g, dtype=torch.int32),
        "c.ids": torch.randint(-2**62, 2**62, (6,), generator=g, dtype=torch.int64),
        "c.mask": torch.rand(4, 4, generator=g) > 0.5,
        "c.empty": torch.zeros(0, 3),
        "c.scalar": torch.tensor(3.5),
    }


def assert_same(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert list(got) == list(want) or set(got) == set(want)
    for k, v in want.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
        assert torch.equal(got[k], v), k


def test_single_file_round_trip_and_the_real_reader(tmp_path):
    seed = draw_seed()
    want = tensors(seed)
    paths = write_checkpoint(want, tmp_path, "m")
    assert [p.name for p in paths] == ["m.safetensors"] and has_checkpoint(tmp_path, "m")
    ck = Checkpoint(tmp_path, "m")
    assert_same(ck.read_all(), want)
    assert_same(load_file(str(paths[0])), want)  # the safetensors package reads our files
    assert SafetensorsFile(paths[0]).metadata["format"] == "pt"


def test_sharded_round_trip_with_index(tmp_path):
    seed = draw_seed()
    want = tensors(seed)
    limit = 600
    paths = write_checkpoint(want, tmp_path, "m", max_shard_bytes=limit)
    shards = [p for p in paths if p.suffix == ".safetensors"]
    assert len(shards) > 2 and paths[-1].name == index_name("m")
    index = json.loads(paths[-1].read_text())
    assert set(index["weight_map"]) == set(want)
    assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size()
                                                 for t in want.values())
    for p in shards:  # every shard within the limit unless it holds one larger tensor
        got = load_file(str(p))
        size = sum(t.numel() * t.element_size() for t in got.values())
        assert size <= limit or len(got) == 1
    assert_same(Checkpoint(tmp_path, "m").read_all(), want)
    # A new save of a single file removes the old shards and index.
    write_checkpoint({"x": torch.ones(2)}, tmp_path, "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_reads_files_written_by_the_safetensors_package(tmp_path):
    want = tensors(draw_seed())
    save_file(want, str(tmp_path / "w.safetensors"), metadata={"format": "pt"})
    assert_same(Checkpoint(tmp_path, "w").read_all(), want)


def _write_raw(path, header: object, data: bytes = b"") -> None:
    raw = json.dumps(header).encode() if not isinstance(header, bytes) else header
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def test_truncated_file_names_the_tensor(tmp_path):
    want = {"first": torch.arange(10.0), "second": torch.arange(50.0)}
    write_checkpoint(want, tmp_path, "m")
    path = tmp_path / "m.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[:-20])
    with pytest.raises(ValueError, match=r"m\.safetensors: tensor second: .*truncated"):
        Checkpoint(tmp_path, "m")
    path.write_bytes(data[:5])
    with pytest.raises(ValueError, match="truncated"):
        SafetensorsFile(path)


@pytest.mark.parametrize("header,match", [
    (b"{not json", "not JSON"),
    ({"t": {"dtype": "F31", "shape": [2], "data_offsets": [0, 8]}}, "tensor t: dtype 'F31'"),
    ({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, "tensor t: data_offsets"),
    ({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 8]}}, "tensor t: shape"),
    ({"t": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, "tensor t: data_offsets"),
    ({"t": {"dtype": "F32", "shape": [2]}}, "tensor t: data_offsets"),
    ([1, 2], "expected a JSON object"),
    (b'{"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
     b'"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}', "appears twice"),
])
def test_malformed_headers(tmp_path, header, match):
    path = tmp_path / "m.safetensors"
    _write_raw(path, header, b"\0" * 8)
    with pytest.raises(ValueError, match=match):
        SafetensorsFile(path)


def test_header_length_past_the_file(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(struct.pack("<Q", 10**6) + b"{}")
    with pytest.raises(ValueError, match="header length"):
        SafetensorsFile(path)


def test_index_must_name_files_inside_the_directory(tmp_path):
    write_checkpoint({"a": torch.ones(3), "b": torch.zeros(3)}, tmp_path, "m", max_shard_bytes=12)
    index = tmp_path / index_name("m")
    data = json.loads(index.read_text())
    for bad in ("../m-00001-of-00002.safetensors", "/etc/passwd", "", 7):
        data["weight_map"]["a"] = bad
        index.write_text(json.dumps(data))
        with pytest.raises(ValueError, match="tensor a maps to"):
            Checkpoint(tmp_path, "m")
    data["weight_map"]["a"] = "m-00002-of-00002.safetensors"  # a shard that lacks it
    index.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="which does not hold it"):
        Checkpoint(tmp_path, "m")
    index.write_text("[")
    with pytest.raises(ValueError, match="not JSON"):
        Checkpoint(tmp_path, "m")


def test_missing_checkpoint_and_writer_errors(tmp_path):
    with pytest.raises(ValueError, match="holds neither"):
        Checkpoint(tmp_path, "m")
    with pytest.raises(TypeError, match="not a torch.Tensor"):
        write_checkpoint({"a": 3}, tmp_path, "m")
    with pytest.raises(ValueError, match="max_shard_bytes"):
        write_checkpoint({"a": torch.ones(1)}, tmp_path, "m", max_shard_bytes=0)


def test_parse_size():
    assert parse_size("5GB") == 5 * 10**9 and parse_size("500MB") == 5 * 10**8
    assert parse_size("1GiB") == 2**30 and parse_size("10kb") == 10**4
    assert parse_size(1234) == 1234 and parse_size("77") == 77
    for bad in ("5XB", "GB", "-1MB", "0"):
        with pytest.raises(ValueError, match="max_shard_size"):
            parse_size(bad)
    with pytest.raises(TypeError, match="max_shard_size"):
        parse_size(1.5)  # type: ignore[arg-type]
