"""sparsify(method="wanda", calibration=...): input norms from a forward pass, hooks removed."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

import sparse_ops as so

SEED = int.from_bytes(os.urandom(4), "little")


class TwoInputs(nn.Module):
    """Takes keyword inputs like a Hugging Face model: forward(input_ids=..., scale=...)."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 23)
        self.fc1 = nn.Linear(23, 41)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(41, 17)

    def forward(self, input_ids, scale=None):
        h = self.emb(input_ids)
        if scale is not None:
            h = h * scale
        return self.fc2(self.drop(torch.relu(self.fc1(h))))


def _ref_mask(w: torch.Tensor, x: torch.Tensor, density: float) -> torch.Tensor:
    """Float64 Wanda: per row keep round(density*K) of |W| * ||x_j||, ties to earlier."""
    norms = x.double().reshape(-1, x.shape[-1]).norm(dim=0)
    score = w.double().abs() * norms
    keep = round(density * w.shape[1])
    mask = torch.zeros_like(score, dtype=torch.bool)
    for i, row in enumerate(score):
        mask[i, torch.sort(row, descending=True, stable=True).indices[:keep]] = True
    return mask


@pytest.mark.parametrize("as_dict", [True, False])
def test_wanda_calibration_matches_float64_reference(as_dict):
    print("seed", SEED)
    torch.manual_seed(SEED)
    net = TwoInputs().double()
    net.train()  # calibration runs in eval mode (no dropout) and restores this
    ids = torch.randint(0, 50, (3, 7))
    scale = torch.rand(23, dtype=torch.float64) * 4
    with torch.no_grad():
        x1 = net.emb(ids) * scale
        x2 = torch.relu(net.fc1(x1))
    w1, w2 = net.fc1.weight.detach().clone(), net.fc2.weight.detach().clone()
    batch = {"input_ids": ids, "scale": scale} if as_dict else (ids, scale)
    so.sparsify(net, "csr", density=0.4, method="wanda", calibration=batch)
    assert net.sparsified == ["fc1", "fc2"]
    assert torch.equal(net.fc1.weight != 0, _ref_mask(w1, x1, 0.4))
    assert torch.equal(net.fc2.weight != 0, _ref_mask(w2, x2, 0.4))
    assert all(m.training for m in net.modules())
    assert not any(m._forward_pre_hooks for m in net.modules())


def test_wanda_tensor_batch_nm_and_bsr():
    print("seed", SEED)
    torch.manual_seed(SEED)
    net = nn.Sequential(nn.Linear(32, 48), nn.ReLU(), nn.Linear(48, 16))
    x = torch.randn(5, 9, 32) * torch.linspace(0.01, 3, 32)  # very unequal input features
    w0 = net[0].weight.detach().clone()
    norms = x.double().reshape(-1, 32).norm(dim=0)
    a = so.sparsify(nn.Sequential(*[_copy(m) for m in net]), "nm", n=2, m=4,
                    method="wanda", calibration=x)
    want = so.prune(w0.double(), "nm", n=2, m=4, method="wanda", input_norms=norms) != 0
    assert torch.equal(a[0].weight != 0, want)
    b = so.sparsify(nn.Sequential(*[_copy(m) for m in net]), "bsr", density=0.5,
                    blocksize=(8, 8), method="wanda", calibration=x)
    want = so.prune(w0.double(), "bsr", 0.5, blocksize=(8, 8), method="wanda",
                    input_norms=norms) != 0
    assert torch.equal(b[0].weight != 0, want)
    # The norms change the choice: magnitude picks another pattern here.
    c = so.sparsify(nn.Sequential(*[_copy(m) for m in net]), "nm", n=2, m=4)
    assert not torch.equal(c[0].weight != 0, a[0].weight != 0)


def _copy(m: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(m)


def test_wanda_errors_and_hooks_removed_on_failure():
    net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))
    with pytest.raises(ValueError, match="calibration"):
        so.sparsify(net, "csr", density=0.5, method="wanda")
    with pytest.raises(ValueError, match="calibration"):
        so.sparsify(net, "csr", density=0.5, calibration=torch.randn(2, 8))
    with pytest.raises(ValueError, match="method"):
        so.sparsify(net, "csr", density=0.5, method="obs", calibration=torch.randn(2, 8))
    with pytest.raises(TypeError, match="calibration"):
        so.sparsify(net, "csr", density=0.5, method="wanda", calibration=3.0)
    with pytest.raises(RuntimeError):  # wrong width: the model's own error, hooks still removed
        so.sparsify(net, "csr", density=0.5, method="wanda", calibration=torch.randn(2, 9))
    assert not any(m._forward_pre_hooks for m in net.modules())
    assert all(type(m) is not so.SparseLinear for m in net)

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.unused = nn.Linear(4, 4)

        def forward(self, x):
            return self.a(x)

    with pytest.raises(ValueError, match="unused"):
        so.sparsify(Branchy(), "csr", density=0.5, method="wanda", calibration=torch.randn(2, 4))
