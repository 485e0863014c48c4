"""DynamicSparsity end to end: invariants over many updates, schedules, optimizer state, bad
input, a bit-exact resume and the dense-free update of an 8192 x 8192 layer."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import sparse_ops as so
from tests.helpers import draw_seed
from tests.sparse_ops.dst.masked_dense import on_backend, structure_mask

SPARSIFY = {
    "csr": {"density": 0.2},
    "bsr": {"density": 0.25, "blocksize": (4, 8)},
    "nm": {"n": 2, "m": 4},
}


def make_model(layout: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(32, 48), nn.ReLU(), nn.Linear(48, 40), nn.ReLU(),
                          nn.Linear(40, 8))
    kw = dict(SPARSIFY[layout])
    return on_backend(so.sparsify(model, layout, density=kw.pop("density", None), **kw))


def train(model, opt, dst, steps: int, seed: int, check=None) -> list[float]:
    g = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        x = torch.randn(16, 32, generator=g)
        y = torch.randint(0, 8, (16,), generator=g)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        before = {n: structure_mask(m) for n, m in model.named_modules()
                  if isinstance(m, so.SparseLinear)}
        updated = dst.step() if dst is not None else False
        if check is not None:
            check(model, before, updated)
        opt.zero_grad()
        losses.append(float(loss.detach()))
    return losses


def check_invariants(model, before, updated):
    for name, mod in model.named_modules():
        if not isinstance(mod, so.SparseLinear):
            continue
        w = mod.sparse_weight()
        # The structure is valid (revalidated from scratch) and has no duplicate columns.
        type(w)(*w.tensors()[:-1], w.values, w.shape, validate=True) if mod.layout != "nm" else \
            so.NMMatrix(w.values, w.metadata, w.shape, *w.params(), validate=True)
        after = structure_mask(mod)
        old = before[name]
        assert int(after.sum()) == int(old.sum()), f"{name}: nnz changed"
        if mod.layout == "csr":
            ids = w.row_indices() * w.shape[1] + w.col_indices.long()
            assert bool((ids.diff() > 0).all()), f"{name}: duplicate or unsorted columns"
        if mod.layout == "bsr":
            ids = w.block_row_indices() * (w.shape[1] // w.blocksize[1]) + w.col_indices.long()
            assert bool((ids.diff() > 0).all()), f"{name}: duplicate or unsorted blocks"
        if mod.layout == "nm":
            pos = w.positions().view(w.shape[0], -1, w.n)
            assert bool((pos.diff(dim=-1) > 0).all()), f"{name}: duplicate positions in a group"
        grown, pruned = after & ~old, old & ~after
        assert int(grown.sum()) == int(pruned.sum())
        if not updated:
            assert not bool(grown.any()), f"{name}: structure changed off an update step"


@pytest.mark.parametrize("layout", list(SPARSIFY))
@pytest.mark.parametrize("grow", ["gradient", "random", "momentum"])
def test_updates_keep_nnz_and_structure(layout, grow):
    seed = draw_seed()
    model = make_model(layout, seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    dst = so.dst.DynamicSparsity(model, opt, prune="magnitude", grow=grow, update_every=3,
                                 drop_fraction=0.4, schedule="cosine", stop_at=9,
                                 momentum_window=2, seed=seed)
    train(model, opt, dst, 11, seed, check_invariants)
    st = dst.stats()
    assert all(s["updates"] == 3 for s in st.values()), st  # steps 3, 6, 9; frozen after
    assert all(s["total_swapped"] > 0 for s in st.values())


def test_training_with_dst_reduces_the_loss():
    seed = draw_seed()
    model = make_model("csr", seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    dst = so.dst.DynamicSparsity(model, opt, update_every=10, schedule="constant", seed=seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 32, generator=g)
    y = x[:, :8].argmax(1)  # learnable labels
    losses = []
    for _ in range(100):
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        dst.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    assert sum(losses[-10:]) / 10 < 0.7 * losses[0], (seed, losses[0], losses[-10:])
    assert dst.stats()["0"]["updates"] == 10


def test_cosine_schedule_and_freeze():
    s = so.dst.DropSchedule(0.3, 100, "cosine", stop_at=1000)
    assert s.fraction(0) == pytest.approx(0.3)
    assert s.fraction(500) == pytest.approx(0.15)
    assert s.fraction(250) == pytest.approx(0.15 * (1 + math.cos(math.pi / 4)))
    assert s.fraction(1000) == 0.0
    assert s.is_update(1000) and not s.is_update(1100) and not s.is_update(150)
    assert s.count(500, 1001) == round(0.15 * 1001)
    c = so.dst.DropSchedule(0.3, 10, "constant")
    assert c.fraction(12345) == 0.3 and c.is_update(10 ** 6)


def test_adam_state_carried_for_kept_zeroed_for_grown():
    seed = draw_seed()
    model = make_model("csr", seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    dst = so.dst.DynamicSparsity(model, opt, update_every=2, schedule="constant", seed=seed)
    train(model, opt, dst, 1, seed)
    mod = model[0]
    old_mask = structure_mask(mod)

    def dense(key):
        return mod.sparse_weight().with_values(opt.state[mod.values][key].clone()).to_dense()

    g = torch.Generator().manual_seed(seed)
    nn.functional.cross_entropy(model(torch.randn(16, 32, generator=g)),
                                torch.randint(0, 8, (16,), generator=g)).backward()
    opt.step()
    saved = {key: dense(key) for key in ("exp_avg", "exp_avg_sq")}
    values_obj = mod.values
    assert dst.step()
    assert mod.values is values_obj and opt.state[mod.values]["exp_avg"].shape == mod.values.shape
    new_mask = structure_mask(mod)
    kept, grown = new_mask & old_mask, new_mask & ~old_mask
    assert bool(grown.any())
    for key, want in saved.items():
        got = dense(key)
        assert torch.equal(got[kept], want[kept]), key
        assert bool((got[grown] == 0).all()), key


def test_bit_exact_resume():
    seed = draw_seed()

    def setup():
        model = make_model("csr", seed)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        dst = so.dst.DynamicSparsity(model, opt, prune="mest", grow="momentum", update_every=4,
                                     momentum_window=3, drop_fraction=0.3, schedule="cosine",
                                     total_steps=20, seed=seed)
        return model, opt, dst

    model, opt, dst = setup()
    train(model, opt, dst, 7, seed)  # step 7: inside the momentum window of the update at 8
    ckpt = copy.deepcopy((model.state_dict(), opt.state_dict(), dst.state_dict()))
    train(model, opt, dst, 9, seed + 1)
    model2, opt2, dst2 = setup()
    model2.load_state_dict(ckpt[0])
    opt2.load_state_dict(ckpt[1])
    dst2.load_state_dict(ckpt[2])
    train(model2, opt2, dst2, 9, seed + 1)
    for (n, a), (_, b) in zip(model.state_dict().items(), model2.state_dict().items(),
                              strict=True):
        assert torch.equal(a, b), n
    def untimed(st):
        return {n: {k: v for k, v in d.items() if "time" not in k} for n, d in st.items()}

    assert untimed(dst.stats()) == untimed(dst2.stats())
    assert dst.step_count == dst2.step_count == 16


def test_bad_input_raises_value_error():
    model = make_model("csr", 0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="prune"):
        so.dst.DynamicSparsity(model, opt, prune="largest", schedule="constant")
    with pytest.raises(ValueError, match="grow"):
        so.dst.DynamicSparsity(model, opt, grow="hebbian", schedule="constant")
    for f in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="drop_fraction"):
            so.dst.DynamicSparsity(model, opt, drop_fraction=f, schedule="constant")
    with pytest.raises(ValueError, match="model"):
        dense = nn.Sequential(nn.Linear(4, 4))
        so.dst.DynamicSparsity(dense, torch.optim.SGD(dense.parameters(), lr=0.1),
                               schedule="constant")
    with pytest.raises(ValueError, match="schedule"):
        so.dst.DynamicSparsity(model, opt, schedule="cosine")  # no T_end
    with pytest.raises(ValueError, match="update_every"):
        so.dst.DynamicSparsity(model, opt, schedule="constant", update_every=0)
    with pytest.raises(ValueError, match="update_threads"):
        so.dst.DynamicSparsity(model, opt, schedule="constant", update_threads=0)
    with pytest.raises(ValueError, match="exclude"):
        so.dst.DynamicSparsity(model, opt, schedule="constant", exclude=["nope"])
    # Gradient growth before any backward.
    dst = so.dst.DynamicSparsity(model, opt, grow="gradient", update_every=1,
                                 schedule="constant")
    with pytest.raises(ValueError, match="backward"):
        dst.step()
    dst.remove()
    model(torch.randn(2, 32))  # a forward but no backward
    dst = so.dst.DynamicSparsity(model, opt, prune="snip", grow="random", update_every=1,
                                 schedule="constant")
    with pytest.raises(ValueError, match="backward"):
        dst.step()


def test_excluded_layer_stays_static():
    seed = draw_seed()
    model = make_model("csr", seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    dst = so.dst.DynamicSparsity(model, opt, update_every=2, schedule="constant", exclude=["2"])
    frozen = structure_mask(model[2])
    train(model, opt, dst, 6, seed)
    assert torch.equal(structure_mask(model[2]), frozen)
    assert set(dst.stats()) == {"0", "4"}


class MaxAlloc(TorchDispatchMode):
    """Records the largest tensor any torch op produces (factories included)."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("grow", ["gradient", "random"])
def test_8192_layer_update_allocates_nothing_dense(grow):
    seed = draw_seed()
    size, density = 8192, 0.01
    nnz = round(density * size * size)
    g = torch.Generator().manual_seed(seed)
    ids = so.dst.growth.random_inactive_grid(torch.zeros(0, dtype=torch.long), size * size, nnz,
                                             g)
    crow = torch.zeros(size + 1, dtype=torch.int32)
    crow[1:] = torch.cumsum(torch.bincount(ids // size, minlength=size), 0)
    w = so.CSRMatrix(crow, (ids % size).to(torch.int16), torch.randn(nnz, generator=g) * 0.01,
                     (size, size))
    layer = on_backend(so.SparseLinear(w))
    opt = torch.optim.SGD(layer.parameters(), lr=0.01, momentum=0.9)
    dst = so.dst.DynamicSparsity(layer, opt, grow=grow, update_every=1, schedule="constant",
                                 drop_fraction=0.3, seed=seed)
    x = torch.randn(8, size, generator=g)
    layer(x).square().sum().backward()
    opt.step()
    with MaxAlloc() as probe:
        assert dst.step()
    assert probe.largest < size * size // 16, (probe.largest, size * size)
    assert dst.stats()[""]["pruned"] == round(0.3 * nnz)
    assert layer.values.numel() == nnz
