"""sparsify: per-layer density distributions (uniform, ERK) and keep_dense."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

import sparse_ops as so
from sparse_ops.density import layer_densities

SEED = int.from_bytes(os.urandom(4), "little")


def _net(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    # Odd sizes, very different fan-in/fan-out ratios.
    return nn.Sequential(
        nn.Linear(7, 131), nn.ReLU(), nn.Linear(131, 257), nn.ReLU(), nn.Linear(257, 93),
        nn.ReLU(), nn.Linear(93, 5),
    )


def _stored(model: nn.Module, names: list[str]) -> tuple[int, int]:
    nnz = total = 0
    for name in names:
        mod = model.get_submodule(name)
        nnz += int((mod.weight != 0).sum())
        total += mod.out_features * mod.in_features
    return nnz, total


@pytest.mark.parametrize("distribution", ["uniform", "erk"])
@pytest.mark.parametrize("density", [0.05, 0.3, 0.8])
def test_total_nnz_matches_density(distribution, density):
    print("seed", SEED)
    net = so.sparsify(_net(SEED), "csr", density=density, distribution=distribution)
    assert net.sparsified == ["0", "2", "4", "6"]
    nnz, total = _stored(net, net.sparsified)
    # Each layer rounds its own count: at most half an entry off per layer.
    assert abs(nnz - density * total) <= 0.5 * len(net.sparsified) + 1e-9
    for name in net.sparsified:
        mod = net.get_submodule(name)
        want = round(net.sparsify_densities[name] * mod.out_features * mod.in_features)
        assert int((mod.weight != 0).sum()) == want


def test_erk_gives_smaller_layers_higher_density():
    shapes = [(131, 7), (257, 131), (93, 257), (5, 93), (1024, 1024)]
    d = layer_densities(shapes, 0.2, "erk")
    total = sum(a * b for a, b in shapes)
    assert sum(di * a * b for di, (a, b) in zip(d, shapes, strict=True)) == pytest.approx(
        0.2 * total, rel=1e-12)
    factor = [(a + b) / (a * b) for a, b in shapes]
    # Density follows the ERK factor: a larger factor never gets a lower density.
    order = sorted(range(len(shapes)), key=lambda i: factor[i])
    ds = [d[i] for i in order]
    assert ds == sorted(ds)
    assert d[-1] < 0.2 < d[0]
    # Uncapped layers are exactly proportional to the factor.
    free = [i for i in range(len(shapes)) if d[i] < 1.0]
    ratios = [d[i] / factor[i] for i in free]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-12)


def test_erk_caps_at_one_and_rescales():
    # The tiny layer's ERK density would exceed 1: it is made dense, the rest rescaled.
    shapes = [(3, 4), (512, 512), (300, 700)]
    d = layer_densities(shapes, 0.5, "erk")
    assert d[0] == 1.0
    assert all(0 < x < 1 for x in d[1:])
    total = sum(a * b for a, b in shapes)
    assert sum(di * a * b for di, (a, b) in zip(d, shapes, strict=True)) == pytest.approx(
        0.5 * total, rel=1e-12)
    assert d[1] / ((512 + 512) / 512**2) == pytest.approx(d[2] / (1000 / 210000), rel=1e-12)
    # Reference: RigL's loop, written independently with numpy-style bookkeeping.
    dense, eps = set(), None
    while True:
        rhs = sum((-(1 - 0.5) * a * b) if i in dense else 0.5 * a * b
                  for i, (a, b) in enumerate(shapes))
        raw = {i: (a + b) / (a * b) for i, (a, b) in enumerate(shapes) if i not in dense}
        eps = rhs / sum(raw[i] * shapes[i][0] * shapes[i][1] for i in raw)
        top = max(raw.values())
        if top * eps > 1:
            dense |= {i for i, r in raw.items() if r == top}
            continue
        break
    ref = [1.0 if i in dense else raw[i] * eps for i in range(len(shapes))]
    assert d == pytest.approx(ref, rel=1e-12)


def test_uniform_and_density_one():
    assert layer_densities([(3, 5), (8, 2)], 0.4, "uniform") == [0.4, 0.4]
    assert layer_densities([(3, 5), (8, 2)], 1.0, "erk") == [1.0, 1.0]
    assert layer_densities([], 0.3, "erk") == []


def test_erk_bsr_counts_blocks():
    torch.manual_seed(SEED)
    print("seed", SEED)
    net = nn.Sequential(nn.Linear(64, 32), nn.Linear(32, 256), nn.Linear(256, 96))
    so.sparsify(net, "bsr", density=0.3, blocksize=(8, 8), distribution="erk")
    for name in net.sparsified:
        mod = net.get_submodule(name)
        blocks = (mod.out_features // 8) * (mod.in_features // 8)
        assert mod.values.shape[0] == round(net.sparsify_densities[name] * blocks)
    assert net.sparsify_densities["0"] > net.sparsify_densities["2"]


def test_distribution_errors():
    with pytest.raises(ValueError, match="distribution"):
        so.sparsify(_net(0), "csr", density=0.5, distribution="ERK2")
    with pytest.raises(TypeError, match="distribution"):
        so.sparsify(_net(0), "csr", density=0.5, distribution=1)
    with pytest.raises(ValueError, match="distribution"):
        so.sparsify(_net(0), "nm", n=2, m=4, distribution="erk")
    with pytest.raises(ValueError, match="distribution"):
        layer_densities([(2, 2)], 0.5, "gaussian")
    with pytest.raises(ValueError, match="density"):
        layer_densities([(2, 2)], 0.0, "erk")
    with pytest.raises(TypeError, match="shapes"):
        layer_densities([(2, 2.0)], 0.5, "erk")
    with pytest.raises(ValueError, match="shapes"):
        layer_densities([(0, 3)], 0.5, "erk")


def test_keep_dense_names_and_patterns():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj = nn.Linear(16, 16)
            self.up = nn.Linear(16, 48)
            self.down = nn.Linear(48, 16)

        def forward(self, x):
            return self.down(torch.relu(self.up(self.q_proj(x))))

    net = nn.Sequential(Block(), Block(), nn.Linear(16, 11))
    x = torch.randn(3, 16)
    so.sparsify(net, "csr", density=0.4, keep_dense=("2", "*.q_proj", "1.up"))
    assert net.sparsified == ["0.up", "0.down", "1.down"]
    assert set(net.sparsify_skipped) == {"0.q_proj", "1.q_proj", "1.up", "2"}
    assert "'*.q_proj'" in net.sparsify_skipped["0.q_proj"]
    assert type(net[2]) is nn.Linear and isinstance(net[0].up, so.SparseLinear)
    assert net(x).shape == (3, 11)
    with pytest.raises(TypeError, match="keep_dense"):
        so.sparsify(nn.Sequential(nn.Linear(4, 4)), "csr", density=0.5, keep_dense=3)
    with pytest.raises(TypeError, match="keep_dense"):
        so.sparsify(nn.Sequential(nn.Linear(4, 4)), "csr", density=0.5, keep_dense=[1])


def test_default_keeps_lm_head_dense():
    net = nn.Module()
    net.body = nn.Linear(8, 8)
    net.lm_head = nn.Linear(8, 20)
    so.sparsify(net, "csr", density=0.5)
    assert net.sparsified == ["body"] and "lm_head" in net.sparsify_skipped
    net2 = nn.Module()
    net2.body = nn.Linear(8, 8)
    net2.lm_head = nn.Linear(8, 20)
    so.sparsify(net2, "csr", density=0.5, keep_dense=())
    assert net2.sparsified == ["body", "lm_head"]


def test_shared_parameter_left_dense():
    net = nn.Sequential(nn.Linear(6, 6), nn.Linear(6, 6), nn.Linear(6, 6))
    net[2].weight = net[0].weight
    so.sparsify(net, "csr", density=0.5)
    assert net.sparsified == ["1"]
    assert "tied" in net.sparsify_skipped["0"] and "2.weight" in net.sparsify_skipped["0"]
    assert "tied" in net.sparsify_skipped["2"]
    assert net[0].weight is net[2].weight


def test_bad_arguments_leave_the_model_untouched():
    net = _net(0)
    for kw in ({"density": None}, {"density": 1.5}, {"blocksize": None, "density": 0.5}):
        layout = "bsr" if "blocksize" in kw else "csr"
        with pytest.raises(ValueError, match="density|blocksize"):
            so.sparsify(net, layout, **kw)
        assert all(type(mod) is nn.Linear for mod in net if not isinstance(mod, nn.ReLU))
    with pytest.raises(ValueError, match="layout"):
        so.sparsify(net, "coo", density=0.5)
