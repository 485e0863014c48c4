"""SparseLinear and sparsify: swaps, training, state_dict, models that read .weight."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import sparse_ops as so
from tests.helpers import rel_err


@pytest.mark.parametrize(
    "layout,kw",
    [("csr", {"density": 0.25}), ("bsr", {"density": 0.5, "blocksize": (4, 8)}),
     ("nm", {"n": 2, "m": 4}), ("nm", {"n": 1, "m": 4})],
)
def test_from_dense_matches_pruned_linear(layout, kw):
    lin = nn.Linear(24, 20)
    layer = so.SparseLinear.from_dense(lin, layout, **kw)
    pruned = so.prune(lin.weight.detach(), layout, **kw)
    assert torch.equal(layer.weight, pruned)
    x = torch.randn(3, 24)
    assert rel_err(layer(x), nn.functional.linear(x.double(), pruned.double(),
                                                  lin.bias.detach().double())) < 1e-5
    layer(x).sum().backward()
    assert layer.values.grad is not None and layer.bias.grad is not None
    assert "layout" in repr(layer)


def test_training_step_changes_values_only():
    layer = so.SparseLinear.from_dense(nn.Linear(16, 8), "csr", density=0.3)
    pattern = layer.weight != 0
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    before = layer.values.detach().clone()
    layer(torch.randn(4, 16)).square().mean().backward()
    opt.step()
    assert not torch.equal(before, layer.values)
    assert torch.equal(layer.weight != 0, pattern | (layer.weight != 0)) and bool(
        ((layer.weight != 0) & ~pattern).sum() == 0)


def test_sparsify_reports_and_skips_unsafe_layers():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(32, 4, batch_first=True)
            self.fc1 = nn.Linear(32, 64)
            self.fc2 = nn.Linear(64, 32)
            self.head = nn.Linear(32, 10)

        def forward(self, x):
            x, _ = self.attn(x, x, x)
            return self.head(self.fc2(torch.relu(self.fc1(x))))

    net = Net()
    x = torch.randn(2, 5, 32)
    net(x)
    so.sparsify(net, "bsr", density=0.5, blocksize=(16, 16),
                filter=lambda name, mod: name != "head")
    assert net.sparsified == ["fc1", "fc2"]
    assert "attn.out_proj" in net.sparsify_skipped
    assert isinstance(net.fc1, so.SparseLinear) and isinstance(net.head, nn.Linear)
    assert net(x).shape == (2, 5, 10)  # the attention still reads its own weights


def test_sparsify_skips_layers_the_block_does_not_fit():
    net = nn.Sequential(nn.Linear(32, 32), nn.Linear(32, 10))
    so.sparsify(net, "bsr", density=0.5, blocksize=(16, 16))
    assert net.sparsified == ["0"]
    assert "blocksize" in net.sparsify_skipped["1"]


def test_state_dict_round_trip(tmp_path):
    torch.manual_seed(1)
    a = so.sparsify(nn.Sequential(nn.Linear(40, 24), nn.ReLU(), nn.Linear(24, 8)), "csr",
                    density=0.2)
    path = tmp_path / "m.pt"
    torch.save(a.state_dict(), path)
    torch.manual_seed(2)  # another init: another pattern, another nnz
    b = so.sparsify(nn.Sequential(nn.Linear(40, 24), nn.ReLU(), nn.Linear(24, 8)), "csr",
                    density=0.3)
    b.load_state_dict(torch.load(path))
    x = torch.randn(3, 40)
    assert torch.equal(a(x), b(x))


def test_sparse_linear_errors():
    with pytest.raises(TypeError, match="module"):
        so.SparseLinear.from_dense(nn.Conv2d(1, 1, 1), "csr", density=0.5)
    with pytest.raises(TypeError, match="weight"):
        so.SparseLinear(torch.randn(3, 3))
    with pytest.raises(TypeError, match="model"):
        so.sparsify("not a model", "csr", density=0.5)


def test_sparse_linear_of_a_dense_layer_points_to_from_dense():
    lin = nn.Linear(8, 4)
    with pytest.raises(TypeError, match=r"nn\.Linear.*SparseLinear\.from_dense"):
        so.SparseLinear(lin)
    with pytest.raises(TypeError, match=r"weight: got a torch\.Tensor.*so\.to_sparse"):
        so.SparseLinear(lin.weight.detach())
    # The route the message names works on the same layer.
    layer = so.SparseLinear.from_dense(lin, "csr", density=0.5)
    assert isinstance(layer, so.SparseLinear) and layer.weight.shape == (4, 8)


def test_bsr_values_reshaped_to_2d_is_a_value_error():
    w = so.prune(torch.randn(16, 24), "bsr", density=0.5, blocksize=(4, 8))
    b = so.to_sparse(w, "bsr", blocksize=(4, 8))
    nnzb = b.values.shape[0]
    b.values = b.values.reshape(nnzb, -1)
    msg = rf"values: .*\(nnzb, R, C\).*\({nnzb}, 32\)"
    with pytest.raises(ValueError, match=msg):
        _ = b.blocksize
    with pytest.raises(ValueError, match=msg):
        so.matmul(b, torch.randn(24, 3))
    with pytest.raises(ValueError, match=msg):
        b.to_dense()
    b.values = b.values.reshape(nnzb, 4, 8)  # the shape the message asks for
    assert b.blocksize == (4, 8) and torch.equal(b.to_dense(), w)


def test_sparse_weight_follows_replaced_tensors():
    """The matrix kept between eager calls is rebuilt when a parameter or buffer is replaced;
    the results always match the module's current tensors (float64 reference)."""
    seed = int(torch.randint(0, 2**31 - 1, ()).item())
    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(29, 17).double()
    layer = so.SparseLinear.from_dense(lin, "csr", density=0.3)
    first = layer.sparse_weight()
    assert layer.sparse_weight() is first  # unchanged tensors: kept
    x = torch.randn(5, 29, generator=g, dtype=torch.float64)

    def want() -> torch.Tensor:
        return x @ layer.weight.T + layer.bias

    with torch.no_grad():
        assert rel_err(layer(x), want()) < 1e-12, f"seed {seed}"
        layer.values = nn.Parameter(torch.randn(layer.values.shape, generator=g,
                                                dtype=torch.float64))
        assert layer.sparse_weight() is not first
        assert layer.sparse_weight().values is layer.values
        assert rel_err(layer(x), want()) < 1e-12, f"seed {seed}"
        other = so.to_sparse(so.prune(torch.randn(17, 29, generator=g, dtype=torch.float64),
                                      "csr", 0.5), "csr")
        layer.load_state_dict({**layer.state_dict(), "values": other.values,
                               "crow_indices": other.crow_indices,
                               "col_indices": other.col_indices})
        assert rel_err(layer(x), x @ other.to_dense().T + layer.bias) < 1e-12, f"seed {seed}"
        layer.crow_indices = layer.crow_indices[:-1].clone()  # one row short of the shape
        with pytest.raises(ValueError, match="crow_indices"):
            layer(x)
