"""workload_from_model: Hugging Face Llama and BERT (sparsified, from configs) and a small CNN
traced into simulator layers with their real weight patterns, exported, and swept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import sparse_accel_sim as sim
import sparse_ops as so
from tests.helpers import draw_seed

transformers = pytest.importorskip("transformers")
from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
GRID = {"rows": [4, 8], "cols": [8], "dataflow": ["os", "ws"],
        "sparsity": ["dense", "unstructured"]}


def llama(seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, vocab_size=256)
    return LlamaForCausalLM(cfg).eval()


def bert(seed: int) -> BertModel:
    torch.manual_seed(seed)
    cfg = BertConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                     num_attention_heads=4, vocab_size=256, max_position_embeddings=64)
    return BertModel(cfg).eval()


def real_densities(model: nn.Module) -> dict[str, float]:
    out = {}
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Linear, so.SparseLinear)):
            w = mod.weight.detach()
            out[name] = float((w != 0).sum()) / w.numel()
    return out


def test_sparsified_llama_real_densities_and_scalesim_rows(tmp_path):
    seed = draw_seed()
    model = so.sparsify(llama(seed), "nm", n=2, m=4, keep_dense=())
    so.sparsify(model, "csr", density=0.3)  # nothing left: every Linear is already 2:4
    x = torch.randint(0, 256, (2, 5), generator=torch.Generator().manual_seed(seed))
    wl = sim.workload_from_model(model, x)
    names = [n for n, m in model.named_modules() if isinstance(m, so.SparseLinear)]
    assert [layer.name for layer in wl.layers] == names  # call order = module order here
    real = real_densities(model)
    for layer in wl.layers:
        mod = model.get_submodule(layer.name)
        assert (layer.M, layer.K, layer.N) == (10, mod.in_features, mod.out_features)
        assert layer.nm == (2, 4) and wl.layouts[layer.name] == "nm"
        assert wl.densities[layer.name] == real[layer.name]  # the model's own, exactly
        assert np.array_equal(wl.weights[layer.name], (mod.weight != 0).numpy().T)
    path = wl.to_scalesim_csv(tmp_path / "llama.csv")
    back = sim.load_topology(path)
    assert [(b.name, b.M, b.K, b.N, b.nm) for b in back] == \
        [(a.name, a.M, a.K, a.N, a.nm) for a in wl.layers]
    assert path.read_text().splitlines()[0] == "Layer name, M, N, K, Sparsity,"
    # decode step of one token: M = batch
    step = sim.workload_from_model(model, x[:, :1])
    assert {layer.M for layer in step.layers} == {2}


def test_sweep_a_sparsified_llama_and_bert():
    seed = draw_seed()
    lm = so.sparsify(llama(seed), "nm", n=2, m=4, keep_dense=())
    x = torch.randint(0, 256, (1, 6), generator=torch.Generator().manual_seed(seed))
    wl = sim.workload_from_model(lm, x)
    grid = {**GRID, "sparsity": ["dense", "nm", "unstructured"]}
    rows = sim.sweep(grid, wl, processes=1, progress=False)
    assert len(rows) == 12
    # each row is the model's layers with their real patterns on that point
    for row in rows[:3]:
        arch = sim.Arch(rows=row["rows"], cols=row["cols"], dataflow=row["dataflow"],
                        sparsity=row["sparsity"])
        total = sim.summarize(wl.simulate(arch))
        assert row["elapsed_cycles"] == total.elapsed_cycles
    by = {(r["rows"], r["dataflow"], r["sparsity"]): r for r in rows}
    assert by[(8, "os", "nm")]["compute_cycles"] < by[(8, "os", "dense")]["compute_cycles"]

    enc = so.sparsify(bert(seed), "csr", density=0.2)
    wb = sim.workload_from_model(enc, {"input_ids": x, "attention_mask": torch.ones_like(x)})
    real = real_densities(enc)
    assert len(wb.layers) == 13  # 2 x 6 projections + the pooler
    assert all(wb.densities[n] == real[n] for n in real)
    assert wb.layouts["encoder.layer.0.attention.self.query"] == "csr"
    rows_b = sim.sweep(GRID, wb, processes=1, progress=False)
    synthetic = sim.sweep(GRID, wb.layers, processes=1, progress=False, density=0.2)
    assert len(rows_b) == 8
    # the real patterns are what ran: other cycles than a synthetic pattern of that density
    assert [r["elapsed_cycles"] for r in rows_b] != [r["elapsed_cycles"] for r in synthetic]
    assert {r["point_id"] for r in rows_b}.isdisjoint(r["point_id"] for r in synthetic)


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, groups=2, bias=False)
        self.conv3 = nn.Conv2d(8, 6, (3, 1), stride=(1, 2), dilation=(2, 1))
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        y = self.conv3(torch.relu(self.conv2(torch.relu(self.conv1(x)))))
        return self.fc(y.mean((2, 3)))


def test_conv2d_lowered_as_scalesim_does():
    torch.manual_seed(draw_seed())
    net = CNN()
    with torch.no_grad():
        net.conv1.weight.mul_((torch.rand_like(net.conv1.weight) > 0.5).float())
    x = torch.randn(1, 3, 17, 19)
    wl = sim.workload_from_model(net, x)
    assert [ly.name for ly in wl.layers] == ["conv1", "conv2.g0", "conv2.g1", "conv3", "fc"]
    c1, g0, g1, c3, fc = wl.layers
    assert (c1.M, c1.K, c1.N) == (9 * 10, 27, 8) and c1.conv is not None
    assert (c1.conv.ofmap_h, c1.conv.ofmap_w) == (9, 10)
    assert (g0.M, g0.K, g0.N) == (9 * 10, 4 * 9, 4) and g1.K == g0.K
    y3 = net.conv3(net.conv2(net.conv1(x)))
    assert (c3.M, c3.K, c3.N) == (y3.shape[2] * y3.shape[3], 8 * 3, 6)
    assert (fc.M, fc.K, fc.N) == (1, 6, 5)
    w1 = net.conv1.weight.detach()
    assert np.array_equal(wl.weights["conv1"], (w1.reshape(8, -1) != 0).numpy().T)
    assert wl.densities["conv1"] == int((w1 != 0).sum()) / w1.numel()
    w2 = net.conv2.weight.detach()[4:]
    assert np.array_equal(wl.weights["conv2.g1"], (w2.reshape(4, -1) != 0).numpy().T)
    results = wl.simulate(sim.Arch(rows=4, cols=4, sparsity="unstructured"))
    assert len(results) == 5 and all(r.elapsed_cycles > 0 for r in results)
    # a batch of two: plain GEMMs with M = 2 * Ho * Wo
    wl2 = sim.workload_from_model(net, torch.randn(2, 3, 17, 19))
    assert wl2.layers[0].M == 2 * 90 and wl2.layers[0].conv is None


def test_a_module_called_twice_gives_two_layers_and_errors():
    lin = nn.Linear(8, 4)

    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = lin

        def forward(self, x):
            return self.lin(x) + self.lin(2 * x)

    wl = sim.workload_from_model(Twice(), torch.randn(3, 8))
    assert [layer.name for layer in wl.layers] == ["lin", "lin#1"]
    with pytest.raises(TypeError, match="model"):
        sim.workload_from_model(lambda x: x, torch.ones(1))
    with pytest.raises(ValueError, match="reached no Linear"):
        sim.workload_from_model(nn.ReLU(), torch.ones(3))
    training = nn.Sequential(nn.Linear(4, 4)).train()
    sim.workload_from_model(training, torch.ones(1, 4))
    assert training.training  # flags restored


def test_the_simulator_still_imports_neither_torch_nor_sparse_ops():
    code = ("import sys, simulator; "
            "assert 'torch' not in sys.modules and 'sparse_ops' not in sys.modules, "
            "[m for m in sys.modules if m.startswith(('torch', 'sparse_ops'))][:5]")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)
