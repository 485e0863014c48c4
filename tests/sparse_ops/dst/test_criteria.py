"""Each pruning criterion, with gradient growth, against the masked-dense float64 reference."""

from __future__ import annotations

import pytest
import torch

import sparse_ops as so
from tests.helpers import draw_seed
from tests.sparse_ops.dst.masked_dense import grid_update, nm_update, on_backend, structure_mask

LAYOUTS = {
    "csr": ((24, 40), {"density": 0.3}),
    "bsr": ((24, 40), {"density": 0.3, "blocksize": (4, 4)}),
    "nm": ((24, 42), {"n": 2, "m": 4}),  # K = 42: a last group of 2 valid columns, left alone
}
DETERMINISTIC = [c for c in so.dst.PRUNE_CRITERIA if c != "random"]


def make_layer(layout: str, seed: int) -> so.SparseLinear:
    shape, kw = LAYOUTS[layout]
    g = torch.Generator().manual_seed(seed)
    lin = torch.nn.Linear(shape[1], shape[0]).double()
    with torch.no_grad():
        lin.weight.copy_(torch.randn(shape, generator=g, dtype=torch.float64))
    density = kw.get("density")
    extra = {key: v for key, v in kw.items() if key != "density"}
    return on_backend(so.SparseLinear.from_dense(lin, layout, density=density, **extra))


def one_update(layout: str, prune: str, seed: int, grow: str = "gradient", fraction=0.3):
    """Run one training step and one update; return what the reference needs and the layer."""
    layer = make_layer(layout, seed)
    g = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.SGD(layer.parameters(), lr=0.05, momentum=0.9)
    dst = so.dst.DynamicSparsity(layer, opt, prune=prune, grow=grow, update_every=1,
                                 drop_fraction=fraction, schedule="constant", seed=seed)
    x = torch.randn(16, layer.in_features, generator=g, dtype=torch.float64)
    dy = torch.randn(16, layer.out_features, generator=g, dtype=torch.float64)
    (layer(x) * dy).sum().backward()
    opt.step()
    before = {
        "w": layer.weight.detach().clone(),
        "mask": structure_mask(layer),
        "grad_dense": dy.t() @ x,  # the dense dL/dW, float64
        "mom": layer.sparse_weight().with_values(
            opt.state[layer.values]["momentum_buffer"].clone()).to_dense(),
        "units": layer.values.shape[0] if layout != "nm" else layer.values.numel(),
    }
    assert dst.step()
    return layer, opt, dst, before


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("prune", DETERMINISTIC)
def test_mask_matches_masked_dense_reference(layout, prune):
    seed = draw_seed()
    layer, opt, dst, b = one_update(layout, prune, seed)
    k = round(0.3 * b["units"])
    if layout == "nm":
        want = nm_update(prune, b["w"], b["mask"], b["grad_dense"], k, *layer.params_)
    else:
        bs = (1, 1) if layout == "csr" else layer.params_
        want = grid_update(prune, b["w"], b["mask"], b["grad_dense"], k, bs)
    got = structure_mask(layer)
    assert torch.equal(got, want), f"seed {seed}: {int((got ^ want).sum())} positions differ"
    # Kept weights and their momentum carried over, grown ones start at zero.
    kept = got & b["mask"]
    w = layer.weight.detach()
    assert torch.equal(w[kept], b["w"][kept])
    assert bool((w[got & ~b["mask"]] == 0).all())
    mom = layer.sparse_weight().with_values(opt.state[layer.values]["momentum_buffer"]).to_dense()
    assert torch.equal(mom[kept], b["mom"][kept])
    assert bool((mom[got & ~b["mask"]] == 0).all())
    st = dst.stats()[""]
    assert st["pruned"] == st["grown"] > 0 and st["updates"] == 1


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_random_prune_and_random_growth_swap_exactly_k(layout):
    seed = draw_seed()
    layer, _, dst, b = one_update(layout, "random", seed, grow="random")
    got = structure_mask(layer)
    assert int(got.sum()) == int(b["mask"].sum())
    changed = int((got & ~b["mask"]).sum())
    unit = 16 if layout == "bsr" else 1
    assert changed == unit * round(0.3 * b["units"]), f"seed {seed}"
    # Another seed chooses differently (so the choice is random, not fixed).
    layer2, _, _, _ = one_update(layout, "random", seed + 7, grow="random")
    layer3, _, _, _ = one_update(layout, "random", seed, grow="random")
    assert torch.equal(structure_mask(layer3), got)  # same seed: same choice
    first = make_layer(layout, seed + 7)
    assert not torch.equal(structure_mask(layer2) ^ structure_mask(first),
                           torch.zeros_like(got))


def test_set_prunes_half_positive_half_negative():
    seed = draw_seed()
    layer = make_layer("csr", seed)
    with torch.no_grad():
        v = layer.values
        k = round(0.3 * v.numel())
    before = layer.values.detach().clone()
    sel = so.dst.select_prune("set", before, None, before.numel(), k)
    chosen = before[sel]
    assert int((chosen >= 0).sum()) == k - k // 2 and int((chosen < 0).sum()) == k // 2
    pos_left = before[(before >= 0)]
    assert float(chosen[chosen >= 0].max()) <= float(pos_left.sort().values[k - k // 2 - 1])
