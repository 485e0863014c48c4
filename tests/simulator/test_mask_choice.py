"""One rule decides a layer's weight pattern: ``simulate_gemm`` (``prepare_mask``) and
``PreparedWorkload`` (``simulate_layers``, sweeps) give the same mask in every case."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import sparse_accel_sim as sim
from sparse_accel_sim.mask_choice import MASK_KINDS, MaskChoice, layer_arch, mask_choice

MODES = ("dense", "nm", "block", "unstructured")
K, N, M = 24, 10, 6
SEED = 11  # fixed: every pattern below is drawn from it (PreparedWorkload: seed + layer index)


def _arch(mode: str) -> sim.Arch:
    return sim.Arch(rows=4, cols=3, dataflow="ws", sparsity=mode, nm=(2, 4), block=(4, 2),
                    dram_words_per_cycle=2, dram_latency=3)


def _weight() -> np.ndarray:
    # 1:4 sparse, so it also satisfies the arrays' 2:4 and a layer's own 1:4
    return sim.synthetic_weight(K, N, kind="nm", nm=(1, 4), seed=SEED)


def _prepared_mask(arch, weight, density, layer_nm) -> np.ndarray | None:
    layer = sim.Layer("x", M, K, N, nm=layer_nm)
    work = sim.PreparedWorkload([layer], weights=None if weight is None else {"x": weight},
                                density=density, seed=SEED)
    pat = work.pattern(0, arch)
    return None if pat is None else pat.mask


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None
                                         and np.array_equal(a, b))


def test_block_and_unstructured_arrays_without_density_agree():
    """The disagreement issue 21 names: ``prepare_mask`` gave ``None`` here while
    ``PreparedWorkload`` gave all ones. Both now give all ones (the sparse datapath stores
    every weight; there is no dense bypass)."""
    for mode in ("block", "unstructured"):
        arch = _arch(mode)
        direct = sim.prepare_mask(arch, K, N)
        assert direct is not None and direct.shape == (K, N) and direct.all()
        assert np.array_equal(direct, _prepared_mask(arch, None, None, None))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("density", [None, 0.4])
@pytest.mark.parametrize("given", [False, True])
@pytest.mark.parametrize("layer_nm", [None, (1, 4)])
def test_both_paths_give_the_same_mask(mode, density, given, layer_nm):
    arch = _arch(mode)
    weight = _weight() if given else None
    prepared = _prepared_mask(arch, weight, density, layer_nm)
    if given and density is not None:
        # one call cannot take both; a workload's density applies to layers without weight
        with pytest.raises(ValueError, match="not both"):
            sim.prepare_mask(arch, K, N, weight, density, SEED, layer_nm=layer_nm)
        direct = sim.prepare_mask(arch, K, N, weight, None, SEED, layer_nm=layer_nm)
    else:
        direct = sim.prepare_mask(arch, K, N, weight, density, SEED, layer_nm=layer_nm)
    assert _same(direct, prepared), (mode, density, given, layer_nm)
    # and the simulated layer is the same: one GEMM on the layer's array, or in a list
    la = layer_arch(arch, layer_nm)
    one = sim.simulate_gemm(la, M, K, N, weight, density=None if given else density,
                            seed=SEED)
    [listed] = sim.simulate_layers(arch, [sim.Layer("x", M, K, N, nm=layer_nm)],
                                   weights=None if weight is None else {"x": weight},
                                   density=density, seed=SEED)
    assert one.totals() == listed.totals()
    assert one.energy_pj == pytest.approx(listed.energy_pj, rel=1e-12)


def test_the_rule():
    expect = {  # mode: (weight, density, neither)
        "dense": ("weight", "uniform", "closed_form"),
        "nm": ("weight", "closed_form", "closed_form"),
        "block": ("weight", "block", "ones"),
        "unstructured": ("weight", "uniform", "ones"),
    }
    for mode, kinds in expect.items():
        arch = _arch(mode)
        got = (mask_choice(arch, weight=True).kind, mask_choice(arch, density=0.5).kind,
               mask_choice(arch).kind)
        assert got == kinds, mode
        assert set(got) <= set(MASK_KINDS)
    assert mask_choice(_arch("block"), density=0.5) == MaskChoice("block", 0.5, (4, 2))
    assert mask_choice(_arch("nm"), weight=True).nm == (2, 4)
    assert mask_choice(_arch("nm"), weight=True, layer_nm=(1, 4)).nm == (1, 4)
    assert mask_choice(_arch("nm"), weight=True, layer_nm=(4, 4)).nm == (2, 4)  # dense layer
    assert mask_choice(_arch("unstructured"), weight=True).nm is None
    # patterns are keyed without the N:M check, so one weight's pattern serves every ratio
    assert (mask_choice(_arch("nm"), weight=True).key
            == mask_choice(_arch("nm"), weight=True, layer_nm=(1, 4)).key
            == mask_choice(_arch("dense"), weight=True).key)


def test_weights_are_checked_against_the_layers_ratio_on_both_paths():
    w = sim.synthetic_weight(K, N, kind="nm", nm=(2, 4), seed=SEED)  # 2:4, not 1:4
    arch = _arch("nm")
    assert sim.prepare_mask(arch, K, N, w) is not None
    with pytest.raises(ValueError, match="1:4"):
        sim.prepare_mask(arch, K, N, w, layer_nm=(1, 4))
    with pytest.raises(ValueError, match="1:4"):
        _prepared_mask(arch, w, None, (1, 4))
    assert _same(sim.prepare_mask(_arch("unstructured"), K, N, w, layer_nm=(1, 4)),
                 _prepared_mask(_arch("unstructured"), w, None, (1, 4)))  # not an nm array


def test_bad_arguments_name_them():
    arch = _arch("unstructured")
    with pytest.raises(ValueError, match="not both"):
        mask_choice(arch, weight=True, density=0.5)
    with pytest.raises(ValueError, match="density"):
        mask_choice(arch, density=1.5)
    with pytest.raises(TypeError, match="density"):
        mask_choice(arch, density="0.5")
    with pytest.raises(ValueError, match="density"):
        sim.PreparedWorkload([sim.Layer("x", M, K, N)]).pattern(0, arch, density=0.0)


def test_every_kind_builds_its_mask():
    for kind, density, block in itertools.product(MASK_KINDS, (0.25,), ((4, 2),)):
        choice = MaskChoice(kind, density if kind in ("uniform", "block") else None,
                            block if kind == "block" else None)
        w = _weight() != 0
        mask = choice.build(K, N, weight_mask=w, seed=SEED)
        if kind == "closed_form":
            assert mask is None
            continue
        assert mask.shape == (K, N) and mask.dtype == bool
        if kind == "weight":
            assert mask is w
        elif kind == "ones":
            assert mask.all()
        else:
            assert np.array_equal(mask, sim.synthetic_mask(K, N, density, kind, seed=SEED,
                                                           block=block))
    with pytest.raises(ValueError, match="weight"):
        MaskChoice("weight").build(K, N)
