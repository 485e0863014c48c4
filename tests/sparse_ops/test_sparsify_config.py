"""sparsify_ with torchao-style configs: the same layers as sparsify with the matching layout,
torchao's in-place semantics and filter_fn(module, fqn), density=None keeping a weight pruned
beforehand, the Wanda option, and the errors."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import sparse_ops as so
from tests.helpers import draw_seed, rel_err


class Net(nn.Module):
    """Linear layers of odd sizes (37, 50) next to multiples of 16, and an ``lm_head``."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.encoder = nn.Sequential(nn.Linear(96, 128), nn.ReLU(), nn.Linear(128, 64))
        self.head = nn.Linear(64, 37)
        self.lm_head = nn.Linear(37, 50)

    def forward(self, x):
        return self.lm_head(torch.relu(self.head(self.encoder(x))))


def same_layers(a: nn.Module, b: nn.Module) -> None:
    sa = {n: m for n, m in a.named_modules() if isinstance(m, so.SparseLinear)}
    sb = {n: m for n, m in b.named_modules() if isinstance(m, so.SparseLinear)}
    assert list(sa) == list(sb) and sa
    for name, la in sa.items():
        lb = sb[name]
        assert (la.layout, la.params_) == (lb.layout, lb.params_), name
        for t in ("values", *la.structure_names):
            assert torch.equal(getattr(la, t), getattr(lb, t)), (name, t)
        assert (la.bias is None) == (lb.bias is None)
        if la.bias is not None:
            assert torch.equal(la.bias, lb.bias)
    assert a.sparsify_skipped == b.sparsify_skipped


CASES = [
    (so.SemiSparseWeightConfig(), "nm", {"n": 2, "m": 4}),
    (so.BlockSparseWeightConfig(blocksize=16, density=0.5), "bsr",
     {"density": 0.5, "blocksize": (16, 16)}),
    (so.BlockSparseWeightConfig(blocksize=(8, 16)), "bsr", {"density": 1.0, "blocksize": (8, 16)}),
    (so.UnstructuredSparseWeightConfig(density=0.3), "bitmap", {"density": 0.3}),
    (so.UnstructuredSparseWeightConfig(density=0.1, layout="csr"), "csr", {"density": 0.1}),
]


@pytest.mark.parametrize("config,layout,kw", CASES,
                         ids=["semi", "block", "block-kept", "bitmap", "csr"])
def test_each_config_gives_the_layers_of_sparsify(config, layout, kw):
    seed = draw_seed()
    a, b = Net(seed), Net(seed)
    x = torch.randn(5, 96, generator=torch.Generator().manual_seed(seed))
    ret = so.sparsify_(a, config)
    assert ret is a  # in place (and returned, as torchao's)
    so.sparsify(b, layout, keep_dense=(), **kw)
    same_layers(a, b)
    assert "lm_head" in a.sparsified or "lm_head" in a.sparsify_skipped  # no name rule
    assert torch.equal(a(x), b(x))


def test_filter_fn_is_called_with_module_and_fqn():
    seed = draw_seed()
    model = Net(seed)
    seen = []

    def filter_fn(module, fqn):
        seen.append((type(module).__name__, fqn))
        return fqn.startswith("encoder")

    so.sparsify_(model, so.SemiSparseWeightConfig(), filter_fn=filter_fn)
    assert seen == [("Linear", "encoder.0"), ("Linear", "encoder.2"), ("Linear", "head"),
                    ("Linear", "lm_head")]
    assert model.sparsified == ["encoder.0", "encoder.2"]
    assert type(model.head) is nn.Linear and type(model.lm_head) is nn.Linear


def test_density_none_keeps_a_weight_pruned_beforehand():
    """torchao's configs took weights already pruned (e.g. by WandaSparsifier): keep them."""
    seed = draw_seed()
    model = Net(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.Linear):
                mod.weight.copy_(so.prune(mod.weight, "bitmap", 0.37))
    want = {n: m.weight.detach().clone() for n, m in model.named_modules()
            if isinstance(m, nn.Linear)}
    x = torch.randn(4, 96, generator=torch.Generator().manual_seed(seed))
    ref = copy.deepcopy(model)(x)
    so.sparsify_(model, so.UnstructuredSparseWeightConfig())
    for name, w in want.items():
        layer = model.get_submodule(name)
        assert layer.layout == "bitmap" and torch.equal(layer.weight, w)
        assert layer.sparse_weight().nnz == int((w != 0).sum())
    assert rel_err(model(x), ref.double()) < 1e-5


def test_block_config_keeps_the_nonzero_blocks():
    seed = draw_seed()
    model = nn.Sequential(nn.Linear(64, 32))
    torch.manual_seed(seed)
    with torch.no_grad():
        w = model[0].weight
        w.copy_(so.prune(w, "bsr", 0.25, blocksize=(8, 8)))
    want = model[0].weight.detach().clone()
    so.sparsify_(model, so.BlockSparseWeightConfig(blocksize=8))
    s = model[0].sparse_weight()
    assert s.layout == "bsr" and s.values.shape[0] == 8 and torch.equal(model[0].weight, want)


@pytest.mark.parametrize("config,layout,kw", [
    (so.SemiSparseWeightConfig, "nm", {"n": 2, "m": 4}),
    (lambda **k: so.UnstructuredSparseWeightConfig(density=0.5, **k), "bitmap",
     {"density": 0.5}),
])
def test_wanda_option_matches_sparsify_wanda(config, layout, kw):
    seed = draw_seed()
    batch = torch.randn(7, 96, generator=torch.Generator().manual_seed(seed))
    a, b = Net(seed), Net(seed)
    so.sparsify_(a, config(method="wanda", calibration=batch))
    so.sparsify(b, layout, keep_dense=(), method="wanda", calibration=batch, **kw)
    same_layers(a, b)
    mag = so.sparsify_(Net(seed), config())
    assert not torch.equal(a.encoder[0].weight != 0, mag.encoder[0].weight != 0)


def test_errors_name_the_argument():
    with pytest.raises(TypeError, match="config"):
        so.sparsify_(Net(0), "2:4")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="model"):
        so.sparsify_("net", so.SemiSparseWeightConfig())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="filter_fn"):
        so.sparsify_(Net(0), so.SemiSparseWeightConfig(), filter_fn=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="blocksize"):
        so.BlockSparseWeightConfig(blocksize=0)
    with pytest.raises(ValueError, match="blocksize"):
        so.BlockSparseWeightConfig(blocksize=(4, 4, 4))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="density"):
        so.UnstructuredSparseWeightConfig(density=1.5)
    with pytest.raises(ValueError, match="layout"):
        so.UnstructuredSparseWeightConfig(density=0.5, layout="bsr")
    with pytest.raises(ValueError, match="calibration"):
        so.SemiSparseWeightConfig(method="wanda")
    with pytest.raises(ValueError, match="method"):
        so.SemiSparseWeightConfig(method="sparsegpt")
    with pytest.raises(ValueError, match="density"):
        so.UnstructuredSparseWeightConfig(method="wanda", calibration=torch.ones(1, 96))
    # a layer the block does not divide stays dense, with the reason
    model = so.sparsify_(Net(0), so.BlockSparseWeightConfig(blocksize=16))
    assert "head" in model.sparsify_skipped and "blocksize" in model.sparsify_skipped["head"]
