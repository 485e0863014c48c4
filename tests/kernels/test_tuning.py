"""The kernels' tuning choices that only a GPU exercises: the autotune switch, BSR's tile
parameters and config pruning, bitmap's float64 tile. Plain functions, no kernel launch."""

from __future__ import annotations

import torch
import triton

from sparse_ops.kernels import autotune, bitmap, bsr


def test_autotune_off_keeps_the_first_config(monkeypatch):
    a, b, i = (triton.Config({"X": v}) for v in (1, 2, 0))
    monkeypatch.setattr(autotune, "INTERPRET", False)
    monkeypatch.setattr(autotune, "TUNE", True)
    assert autotune.configs([a, b], i) == [a, b]
    monkeypatch.setattr(autotune, "TUNE", False)
    assert autotune.configs([a, b], i) == [a]
    monkeypatch.setattr(autotune, "INTERPRET", True)
    assert autotune.configs([a, b], i) == [i]


def test_bsr_tiles_with_a_side_of_16_take_the_dot_padded():
    p = bsr._tile_params(16, 4, torch.float32)
    assert (p["BLOCK_R"], p["BLOCK_C"], p["USE_DOT"]) == (16, 16, True)
    p = bsr._tile_params(3, 40, torch.float32)
    assert (p["BLOCK_R"], p["BLOCK_C"], p["USE_DOT"]) == (16, 64, True)
    p = bsr._tile_params(3, 5, torch.float32)
    assert (p["BLOCK_R"], p["BLOCK_C"], p["USE_DOT"]) == (4, 8, False)


def test_bsr_prune_never_returns_no_config():
    swapped = [triton.Config({"BLOCK_N": 32, "SWAP": True}, num_warps=4, num_stages=3)]
    kept = bsr._prune_spmm(swapped, {"N": 19}, USE_DOT=False, BLOCK_R=4)
    assert [(c.kwargs["BLOCK_N"], c.kwargs["SWAP"], c.num_warps) for c in kept] == [
        (32, False, 4)]
    both = [*swapped, triton.Config({"BLOCK_N": 16, "SWAP": False})]
    assert [c.kwargs["SWAP"] for c in bsr._prune_spmm(both, {"N": 19}, USE_DOT=True,
                                                       BLOCK_R=16)] == [True, False]


def test_bitmap_float64_takes_one_small_tile():
    cfgs = [bitmap._config(64, 64, 128, 8, 3), bitmap._config(16, 16, 128, 4, 3)]
    (c,) = bitmap._prune_spmm(cfgs, {"N": 5}, FP64=True)
    assert (c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.kwargs["BLOCK_K"]) == (16, 16, 16)
    assert bitmap._prune_spmm(cfgs, {"N": 5}, FP64=False) == cfgs[1:]
