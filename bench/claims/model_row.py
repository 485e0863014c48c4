"""The claims report's model row: the sparsified Llama of ``bench.models``, simulated from the
model itself (``simulator.workload_from_model``) next to its measured decode speed.

What is simulated: one decode step (one token, batch 1) of the Llama decoder that
``bench.models`` measures (TinyLlama shapes, 8 layers), with each variant's real pruned
weights: the model is built from its config, sparsified as ``bench.models`` does, traced on a
one-token input, and every GEMM is simulated on the preset with the real weight patterns:
the sparse layers on the preset's array with the matching sparsity support
(``preset.sparse_arch``), the dense ones (``lm_head``) on the dense preset. The step reads the
whole model's weights from DRAM, so the preset's DRAM rate is the machine's measured DRAM
bandwidth here. Attention's activation products and the element-wise work are not GEMMs with
weights and are not simulated; decode tokens/s = clock / the step's elapsed cycles.

Reduced shapes: pruning and tracing the full 1.6 GB model takes about a minute on 2 cores,
so the real patterns come from the decoder at a quarter of the width (hidden 512,
intermediate 1408, 8 heads of 64, 1 key/value head, vocabulary 8000) with one decoder layer
counted 8 times (the tiny run: ``bench.models``' quick shapes). That model gives each
variant's simulated speedup over dense; the dense step at the full shapes (closed form, no
pattern needed) gives the absolute dense tokens/s, and a variant's simulated tokens/s is
that times its speedup. A decode step is memory-bound, so the dense / sparse ratio of its
bytes, not the width, sets the speedup.

Measured: ``decode_tok_s`` of the fp32 eager rows of ``bench/out/<cpu>-<simd>/models.json``
(``make models``), or the newest ``bench/out/*/models.json``; "not measured" without one.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

import sparse_accel_sim as sim
import sparse_ops as so
from bench.host import slug
from bench.models import FULL as MODELS_FULL
from bench.models import QUICK as MODELS_QUICK

from .config import Sizes
from .machine import Machine
from .preset import Preset, sparse_arch

OUT = Path(__file__).resolve().parent.parent / "out"
# (bench.models variant name, layout, sparsify kwargs)
VARIANTS = (("2:4", "nm", {"n": 2, "m": 4}), ("csr 0.5", "csr", {"density": 0.5}),
            ("bitmap 0.5", "bitmap", {"density": 0.5}))
REDUCED = {"hidden_size": 512, "intermediate_size": 1408, "num_attention_heads": 8,
           "num_key_value_heads": 1, "vocab_size": 8000}
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 256}


@dataclass
class ModelRow:
    """One variant: measured and simulated decode tokens/s and their ratios to dense."""

    variant: str
    layout: str
    measured_tok_s: float | None
    measured_dense_tok_s: float | None
    simulated_tok_s: float
    simulated_dense_tok_s: float
    density: float

    @property
    def measured_speedup(self) -> float | None:
        if self.measured_tok_s is None or not self.measured_dense_tok_s:
            return None
        return self.measured_tok_s / self.measured_dense_tok_s

    @property
    def simulated_speedup(self) -> float:
        return self.simulated_tok_s / self.simulated_dense_tok_s

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "measured_speedup": self.measured_speedup,
                "simulated_speedup": self.simulated_speedup}


def measured_rows(out: Path = OUT) -> tuple[dict[str, float], str]:
    """fp32 eager Llama ``decode_tok_s`` by variant from a models.json, and its path ("" when
    there is none): this machine's folder first, else the newest."""
    mine = out / slug() / "models.json"
    files = [mine] if mine.is_file() else sorted(out.glob("*/models.json"),
                                                 key=lambda p: p.stat().st_mtime, reverse=True)
    for path in files:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        rows = {r["variant"]: float(r["decode_tok_s"]) for r in data.get("rows", [])
                if r.get("model") == "Llama" and r.get("dtype") == "float32"
                and not r.get("compiled") and r.get("decode_tok_s")}
        if rows:
            return rows, str(path)
    return {}, ""


def _llama(sizes: Sizes) -> tuple[torch.nn.Module, dict[str, int], str]:
    """The one-layer model the patterns come from, the full shapes, and a note."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tiny = sizes.name == "tiny"
    full = dict((MODELS_QUICK if tiny else MODELS_FULL).llama)
    torch.manual_seed(0)
    cfg = LlamaConfig(**(TINY if tiny else REDUCED), num_hidden_layers=1,
                      tie_word_embeddings=False, max_position_embeddings=256)
    note = (f"patterns from bench.models' quick shapes, 1 decoder layer counted "
            f"{full['num_hidden_layers']} times" if tiny else
            "patterns from the decoder at 1/4 width (hidden 512, intermediate 1408, vocabulary "
            f"8000), 1 decoder layer counted {full['num_hidden_layers']} times; dense speed at "
            f"the full shapes (hidden {full['hidden_size']}, intermediate "
            f"{full['intermediate_size']}, {full['num_hidden_layers']} layers, vocabulary "
            f"{full['vocab_size']})")
    return LlamaForCausalLM(cfg).eval(), full, note


def full_dense_layers(shape: dict[str, int]) -> list[sim.Layer]:
    """The GEMMs of one decode step (one token) of a Llama of ``shape``, every layer."""
    h, inter = shape["hidden_size"], shape["intermediate_size"]
    kv = h // shape["num_attention_heads"] * shape["num_key_value_heads"]
    out = []
    for i in range(shape["num_hidden_layers"]):
        for name, k, n in (("q_proj", h, h), ("k_proj", h, kv), ("v_proj", h, kv),
                           ("o_proj", h, h), ("gate_proj", h, inter), ("up_proj", h, inter),
                           ("down_proj", inter, h)):
            out.append(sim.Layer(f"layers.{i}.{name}", 1, k, n))
    out.append(sim.Layer("lm_head", 1, shape["hidden_size"], shape["vocab_size"]))
    return out


def _step_cycles(model: torch.nn.Module, layers: int, dense_arch: sim.Arch,
                 sparse: sim.Arch) -> tuple[int, float]:
    """Elapsed cycles of one decode step and the sparse layers' density."""
    wl = sim.workload_from_model(model, torch.zeros(1, 1, dtype=torch.long))
    total = 0
    nnz = size = 0
    for layer in wl.layers:
        repeat = layers if ".layers." in f".{layer.name}" else 1
        is_sparse = wl.layouts[layer.name] != "dense"
        arch = sparse if is_sparse else dense_arch
        weight = wl.weights[layer.name] if is_sparse else None
        r = sim.simulate_layers(arch, [layer], weights={layer.name: weight} if is_sparse
                                else None)[0]
        total += repeat * r.elapsed_cycles
        if is_sparse:
            nnz += int(weight.sum())
            size += weight.size
    return total, (nnz / size if size else 1.0)


def model_rows(sizes: Sizes, machine: Machine, preset: Preset) -> dict[str, Any]:
    """The model row's figures: one ``ModelRow`` per variant, plus how they were made."""
    base, full, note = _llama(sizes)
    layers = full["num_hidden_layers"]
    word = preset.arch.word_bytes
    dram = machine.bandwidth_dram or preset.bandwidth
    arch = preset.arch.with_(dram_words_per_cycle=dram / (word * preset.clock_hz))
    measured, source = measured_rows()
    clock = preset.clock_hz
    full_dense = sim.summarize(sim.simulate_layers(arch, full_dense_layers(full)))
    dense_tok_s = clock / full_dense.elapsed_cycles
    dense_cycles, _ = _step_cycles(base, layers, arch, arch)
    rows = []
    for variant, layout, kw in VARIANTS:
        model = copy.deepcopy(base)
        so.sparsify(model, layout, **kw)
        cycles, density = _step_cycles(model, layers, arch, sparse_arch(arch, layout))
        rows.append(ModelRow(variant, layout, measured.get(variant), measured.get("dense"),
                             dense_tok_s * dense_cycles / cycles, dense_tok_s, density))
    return {"rows": [r.to_dict() for r in rows], "shapes": note, "measured_from": source,
            "dram_bytes_per_s": dram}


def _fmt(x: float | None, spec: str) -> str:
    return "not measured" if x is None else format(x, spec)


def markdown(data: dict[str, Any]) -> list[str]:
    """The report's section for the model row (lines)."""
    src = data["measured_from"] or "no bench/out/*/models.json (run `make models`)"
    lines = [
        "## A sparsified model: Llama decode, simulated next to measured",
        "",
        f"The Llama decoder of `bench.models`, sparsified as it is there, traced with "
        f"`simulator.workload_from_model` on a one-token decode step and simulated with its "
        f"real weight patterns on the preset (DRAM at the measured "
        f"{data['dram_bytes_per_s'] / 1e9:.1f} GB/s; {data['shapes']}); attention's "
        f"activation products are not simulated. Measured: fp32 eager decode tokens/s from "
        f"{src}.",
        "",
        "| variant | density | measured decode tok/s (vs dense) | simulated decode tok/s "
        "(vs dense) | simulated / measured speedup |",
        "|---|---|---|---|---|",
    ]
    for r in data["rows"]:
        meas = ("not measured" if r["measured_tok_s"] is None else
                f"{r['measured_tok_s']:.1f} (x{_fmt(r['measured_speedup'], '.2f')})")
        ratio = ("n/a" if r["measured_speedup"] is None else
                 f"{r['simulated_speedup'] / r['measured_speedup']:.2f}")
        lines.append(f"| {r['variant']} | {r['density']:.3f} | {meas} | "
                     f"{r['simulated_tok_s']:.1f} (x{r['simulated_speedup']:.2f}) | {ratio} |")
    return lines + [""]
