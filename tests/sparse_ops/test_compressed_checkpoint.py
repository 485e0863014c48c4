"""compressed-tensors checkpoints, written and read by the real compressed-tensors 0.14.0.1 (the
last release that writes sparse weights): Llama and BERT from configs, unstructured and 2:4,
sharded, old key names, targets / ignore, untrusted and damaged files, the way back with
save_compressed, and the peak memory of a load."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import sparse_ops as so
from sparse_ops.safetensors_files import Checkpoint, write_checkpoint
from tests.helpers import draw_seed, rel_err

pytest.importorskip("transformers")
ct = pytest.importorskip("compressed_tensors")
from compressed_tensors.compressors import ModelCompressor  # noqa: E402
from compressed_tensors.config import (  # noqa: E402
    BitmaskConfig,
    DenseSparsityConfig,
    Sparse24BitMaskConfig,
)
from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM  # noqa: E402

# compressed-tensors 0.14 calls its own deprecated helper while decompressing
pytestmark = pytest.mark.filterwarnings(
    "ignore:has_offloaded_params is deprecated:DeprecationWarning")
CONFIGS = {"sparse-bitmask": BitmaskConfig, "sparse-24-bitmask": Sparse24BitMaskConfig,
           "dense": DenseSparsityConfig}
LAYOUT = {"sparse-bitmask": "bitmap", "sparse-24-bitmask": "nm"}


def llama_config(tie: bool = False, **kw) -> LlamaConfig:
    shape = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, vocab_size=256)
    shape.update(kw)
    return LlamaConfig(**shape, tie_word_embeddings=tie)


def bert_config(**kw) -> BertConfig:
    shape = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, vocab_size=256, max_position_embeddings=64)
    shape.update(kw)
    return BertConfig(**shape)


def build(kind: str, seed: int, **kw) -> nn.Module:
    torch.manual_seed(seed)
    if kind == "llama":
        return LlamaForCausalLM(llama_config(**kw)).eval()
    return BertModel(bert_config(**kw)).eval()


def prune_model(model: nn.Module, fmt: str, skip: tuple[str, ...] = ("lm_head",)) -> nn.Module:
    """Prune every Linear but ``skip`` in place (what SparseGPT / Wanda would have left)."""
    with torch.no_grad():
        for name, mod in model.named_modules():
            if isinstance(mod, nn.Linear) and name not in skip:
                w = mod.weight
                p = (so.prune(w, "nm", n=2, m=4) if fmt == "sparse-24-bitmask"
                     else so.prune(w, "bitmap", 0.4))
                w.copy_(p)
    return model


def ct_write(model: nn.Module, directory: Path, fmt: str, targets=("Linear",),
             ignore=("lm_head",), max_shard_size: str | None = None, **extra) -> Path:
    """Save ``model`` as compressed-tensors' ModelCompressor does (llm-compressor's path)."""
    cfg = CONFIGS[fmt](targets=list(targets), ignore=list(ignore), **extra)
    comp = ModelCompressor.from_pretrained_model(model, sparsity_config_or_format=cfg)
    state = comp.compress(model)
    kw = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(directory, state_dict=state, **kw)
    comp.update_config(directory)
    return directory


def ct_decompressed(cls: type, directory: Path) -> nn.Module:
    """The writer's own decompressed (dense) model of a checkpoint."""
    config = cls.config_class.from_pretrained(directory)
    torch.manual_seed(12345)  # whatever init: the decompressor overwrites every tensor
    model = cls(config).eval()
    ModelCompressor.from_pretrained(directory).decompress(directory, model)
    return model


def ids(seed: int, batch: int = 2, seq: int = 11) -> torch.Tensor:
    return torch.randint(0, 256, (batch, seq), generator=torch.Generator().manual_seed(seed))


def out_of(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model(x)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


CLASSES = {"llama": LlamaForCausalLM, "bert": BertModel}


@pytest.mark.parametrize("kind", ["llama", "bert"])
@pytest.mark.parametrize("fmt", ["sparse-bitmask", "sparse-24-bitmask"])
def test_loads_sparse_with_the_writers_logits(tmp_path, kind, fmt):
    seed = draw_seed()
    model = prune_model(build(kind, seed), fmt)
    shard = "40KB" if kind == "llama" else None  # Llama: sharded with an index
    ct_write(model, tmp_path, fmt, ignore=("lm_head",), max_shard_size=shard)
    if shard:
        assert (tmp_path / "model.safetensors.index.json").is_file()
        assert len(list(tmp_path.glob("model-*-of-*.safetensors"))) >= 3
    ref = ct_decompressed(CLASSES[kind], tmp_path)

    got = so.load_compressed(CLASSES[kind], tmp_path)
    linears = [n for n, m in ref.named_modules() if isinstance(m, nn.Linear)]
    want_sparse = [n for n in linears if n != "lm_head"]
    assert got.sparsified == want_sparse and got.compressed_format == fmt
    assert all(got.get_submodule(n).layout == LAYOUT[fmt] for n in want_sparse)
    if kind == "llama":
        assert got.sparsify_skipped == {"lm_head": "left dense: in sparsity_config.ignore"}
        assert type(got.lm_head) is nn.Linear
    assert not any(t.is_meta for t in [*got.parameters(), *got.buffers()])
    for name in want_sparse:  # the writer's decompressed weight, exactly
        assert torch.equal(got.get_submodule(name).weight, ref.get_submodule(name).weight), name
        assert got.sparsify_densities[name] == pytest.approx(
            float((ref.get_submodule(name).weight != 0).float().mean()))
    x = ids(seed)
    want = out_of(ref, x)
    assert rel_err(out_of(got, x), want) < 1e-5
    assert rel_err(out_of(got, x), out_of(copy.deepcopy(ref).double(), x)) < 1e-5

    # Into an instance of the same architecture with other random weights, in place.
    other = build(kind, seed + 1)
    back = so.load_compressed(other, tmp_path)
    assert back is other and other.sparsified == want_sparse
    assert rel_err(out_of(other, x), want) < 1e-5


def test_24_layer_whose_in_features_is_not_a_multiple_of_4_loads_as_bitmap(tmp_path):
    """compressed-tensors groups a 2:4 weight by fours of the flattened tensor: with K % 4 != 0
    the groups straddle rows; such a layer is read as a bitmap, exactly."""
    seed = draw_seed()
    model = build("bert", seed, hidden_size=68, intermediate_size=130)
    ct_write(model, tmp_path, "sparse-24-bitmask", ignore=())
    ref = ct_decompressed(BertModel, tmp_path)
    got = so.load_compressed(BertModel, tmp_path)
    down = "encoder.layer.0.output.dense"  # 130 -> 68
    assert got.get_submodule(down).layout == "bitmap"
    assert got.get_submodule("encoder.layer.0.intermediate.dense").layout == "nm"
    assert torch.equal(got.get_submodule(down).weight, ref.get_submodule(down).weight)
    x = ids(seed)
    assert rel_err(out_of(got, x), out_of(ref, x)) < 1e-5


def _rewrite(src: Path, dst: Path, edit) -> Path:
    """A copy of checkpoint ``src`` in ``dst`` whose tensors went through ``edit(dict)`` and
    whose config through ``edit_config`` when ``edit`` has one (one file, no index)."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.json"):
        if not f.name.endswith("index.json"):
            shutil.copy(f, dst / f.name)
    state = Checkpoint(src, "model").read_all()
    write_checkpoint(edit(state), dst, "model")
    return dst


def _edit_config(directory: Path, fn) -> None:
    path = directory / "config.json"
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def llama_bitmask(tmp_path_factory):
    seed = draw_seed()
    d = tmp_path_factory.mktemp("llama_bitmask")
    ct_write(prune_model(build("llama", seed), "sparse-bitmask"), d, "sparse-bitmask")
    return d, seed


def test_older_key_names_and_compression_config(tmp_path, llama_bitmask):
    src, seed = llama_bitmask
    want = out_of(so.load_compressed(LlamaForCausalLM, src), ids(seed))

    def old_names(state):
        out = {}
        for k, v in state.items():
            stem, _, part = k.rpartition(".")
            old = part in ("compressed", "bitmask", "row_offsets", "shape")
            out[f"{stem}.weight.{part}" if old else k] = v
        return out

    d = _rewrite(src, tmp_path / "old", old_names)
    assert "model.layers.0.mlp.up_proj.weight.bitmask" in Checkpoint(d).keys()
    _edit_config(d, lambda c: c.__setitem__("compression_config", c.pop("quantization_config")))
    got = so.load_compressed(LlamaForCausalLM, d)
    assert len(got.sparsified) == 14
    assert torch.equal(out_of(got, ids(seed)), want)


def test_targets_and_ignore_are_honoured(tmp_path):
    seed = draw_seed()
    model = prune_model(build("llama", seed), "sparse-bitmask")
    ct_write(model, tmp_path, "sparse-bitmask", targets=("re:.*mlp\\..*",),
             ignore=("re:.*down_proj",))
    got = so.load_compressed(LlamaForCausalLM, tmp_path)
    assert got.sparsified == [f"model.layers.{i}.mlp.{p}" for i in range(2)
                              for p in ("gate_proj", "up_proj")]
    assert got.sparsify_skipped["model.layers.1.mlp.down_proj"] == \
        "left dense: in sparsity_config.ignore"
    assert got.sparsify_skipped["model.layers.0.self_attn.q_proj"] == \
        "left dense: not in sparsity_config.targets"
    assert len(got.sparsify_skipped) == 2 * 5 + 1
    x = ids(seed)
    assert rel_err(out_of(got, x), out_of(ct_decompressed(LlamaForCausalLM, tmp_path), x)) < 1e-5


def test_a_compressed_layer_the_config_leaves_dense_is_a_mismatch(tmp_path, llama_bitmask):
    src, _ = llama_bitmask
    d = _rewrite(src, tmp_path / "c", lambda s: s)
    _edit_config(d, lambda c: c["quantization_config"]["sparsity_config"]["ignore"].append(
        "re:.*q_proj"))
    with pytest.raises(ValueError, match=r"model\.layers\.0\.self_attn\.q_proj\.compressed: .*"
                                         r"config\.json leaves it dense"):
        so.load_compressed(LlamaForCausalLM, d)


@pytest.mark.parametrize("fmt", ["sparse-foo", "__import__('os').system('true')", 5, None,
                                 "Sparse-Bitmask", "sparse-bitmask "])
def test_the_format_string_is_checked_against_an_allowlist(tmp_path, llama_bitmask, fmt):
    src, _ = llama_bitmask
    d = _rewrite(src, tmp_path / "f", lambda s: s)
    _edit_config(d, lambda c: c["quantization_config"]["sparsity_config"].__setitem__(
        "format", fmt))
    with pytest.raises(ValueError, match=r"sparsity_config\.format is .*reads 'dense', "
                                         r"'sparse-bitmask', 'sparse-24-bitmask'"):
        so.load_compressed(LlamaForCausalLM, d)


@pytest.mark.parametrize("edit,match", [
    (lambda q: q.__setitem__("config_groups", {"group_0": {"targets": ["Linear"]}}),
     "quantized weights"),
    (lambda q: q.__setitem__("quant_method", "awq"), "quant_method is 'awq'"),
    (lambda q: q["sparsity_config"].__setitem__("targets", "Linear"), "targets: expected a list"),
    (lambda q: q["sparsity_config"].__setitem__("ignore", ["re:(unclosed"]),
     "not a valid regular expression"),
    (lambda q: q["sparsity_config"].__setitem__("sparsity_structure", "lots"),
     "sparsity_structure"),
])
def test_bad_configs(tmp_path, llama_bitmask, edit, match):
    src, _ = llama_bitmask
    d = _rewrite(src, tmp_path / "b", lambda s: s)
    _edit_config(d, lambda c: edit(c["quantization_config"]))
    with pytest.raises(ValueError, match=match):
        so.load_compressed(LlamaForCausalLM, d)


UP = "model.layers.1.mlp.up_proj"


def _flip_bit(s):
    s[f"{UP}.bitmask"] = s[f"{UP}.bitmask"].clone()
    s[f"{UP}.bitmask"][3, 2] ^= 4
    return s


def _drop(key):
    def edit(s):
        del s[key]
        return s
    return edit


def _set(key, value):
    def edit(s):
        s[key] = value
        return s
    return edit


@pytest.mark.parametrize("edit,match", [
    (_flip_bit, rf"{UP}\.compressed: holds \d+ values, {UP}\.bitmask sets"),
    (_set(f"{UP}.shape", torch.tensor([128, 63])), rf"{UP}\.shape: stores shape \[128, 63\]"),
    (_drop(f"{UP}.row_offsets"), rf"{UP}\.row_offsets: missing"),
    (_set(f"{UP}.compressed", torch.zeros(5, dtype=torch.int8)), rf"{UP}\.compressed: dtype"),
    (_set("model.norm.weight", torch.ones(65)), r"model\.norm\.weight: stored with shape"),
    (_drop("model.layers.0.input_layernorm.weight"),
     r"model\.layers\.0\.input_layernorm\.weight: not in"),
    (_set("model.layers.0.extra", torch.ones(2)), r"model\.layers\.0\.extra: the model has no"),
    (_set("model.layers.9.mlp.up_proj.bitmask", torch.ones(2, dtype=torch.uint8)),
     r"model\.layers\.9\.mlp\.up_proj\.bitmask: the model has no layer"),
    (_set(f"{UP}.weight", torch.zeros(128, 64)), rf"{UP}\.weight: stored as well as"),
])
def test_damaged_tensors_name_the_tensor_and_change_nothing(tmp_path, llama_bitmask, edit,
                                                            match):
    src, seed = llama_bitmask
    d = _rewrite(src, tmp_path / "d", edit)
    model = build("llama", seed + 7)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modules = list(model.modules())
    with pytest.raises(ValueError, match=match):
        so.load_compressed(model, d)
    assert list(model.modules()) == modules  # no layer swapped
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert not hasattr(model, "sparsified")


def test_truncated_shard_names_the_tensor(tmp_path):
    seed = draw_seed()
    ct_write(prune_model(build("llama", seed), "sparse-bitmask"), tmp_path, "sparse-bitmask",
             max_shard_size="40KB")
    shard = sorted(tmp_path.glob("model-*-of-*.safetensors"))[1]
    data = shard.read_bytes()
    shard.write_bytes(data[:-100])
    with pytest.raises(ValueError, match=rf"{shard.name}: tensor \S+: .*truncated"):
        so.load_compressed(LlamaForCausalLM, tmp_path)
    with pytest.raises(ValueError, match="holds no config.json"):
        so.load_compressed(LlamaForCausalLM, tmp_path / "nowhere")
    with pytest.raises(TypeError, match="model_or_class"):
        so.load_compressed(dict, tmp_path)


def test_dense_checkpoints_optionally_sparse_by_their_zeros(tmp_path):
    seed = draw_seed()
    model = prune_model(build("llama", seed), "sparse-24-bitmask")
    ct_write(model, tmp_path, "dense", sparsity_structure="2:4")
    x = ids(seed)
    want = out_of(model, x)
    plain = so.load_compressed(LlamaForCausalLM, tmp_path)
    assert plain.sparsified == [] and plain.compressed_format == "dense"
    assert "pass sparsify_dense=" in plain.sparsify_skipped["model.layers.0.mlp.up_proj"]
    assert torch.equal(out_of(plain, x), want)
    auto = so.load_compressed(LlamaForCausalLM, tmp_path, sparsify_dense="auto")
    assert len(auto.sparsified) == 14 and "lm_head" in auto.sparsify_skipped
    assert all(auto.get_submodule(n).layout == "nm" for n in auto.sparsified)
    assert rel_err(out_of(auto, x), want) < 1e-5
    # A plain Hugging Face checkpoint (no sparsity config), stored by its zeros as bitmap:
    # the pruned layers (density 0.5) shrink; lm_head (no zeros) would not, so stays dense.
    hf = tmp_path / "hf"
    model.save_pretrained(hf)
    bm = so.load_compressed(LlamaForCausalLM, hf, sparsify_dense="bitmap")
    assert "lm_head" in bm.sparsify_skipped and "not fewer than dense" in \
        bm.sparsify_skipped["lm_head"]
    assert all(bm.get_submodule(n).layout == "bitmap" for n in bm.sparsified)
    assert len(bm.sparsified) == 14 and rel_err(out_of(bm, x), want) < 1e-5
    with pytest.raises(ValueError, match="sparsify_dense"):
        so.load_compressed(LlamaForCausalLM, hf, sparsify_dense="bsr")


def test_tied_embeddings_are_tied_again(tmp_path):
    seed = draw_seed()
    model = prune_model(build("llama", seed, tie=True), "sparse-bitmask")
    assert model.lm_head.weight is model.model.embed_tokens.weight
    ct_write(model, tmp_path, "sparse-bitmask")
    got = so.load_compressed(LlamaForCausalLM, tmp_path)
    assert got.lm_head.weight is got.model.embed_tokens.weight
    x = ids(seed)
    assert rel_err(out_of(got, x), out_of(model, x)) < 1e-5


def test_bf16_checkpoint_keeps_its_dtype(tmp_path):
    seed = draw_seed()
    model = prune_model(build("llama", seed), "sparse-24-bitmask").to(torch.bfloat16)
    ct_write(model, tmp_path, "sparse-24-bitmask")
    got = so.load_compressed(LlamaForCausalLM, tmp_path)
    up = got.get_submodule("model.layers.0.mlp.up_proj")
    assert up.values.dtype == torch.bfloat16 and up.layout == "nm"
    ref = ct_decompressed(LlamaForCausalLM, tmp_path)
    assert torch.equal(up.weight, ref.get_submodule("model.layers.0.mlp.up_proj").weight)
    x = ids(seed)
    assert rel_err(out_of(got, x), out_of(copy.deepcopy(ref).double(), x)) < 3e-2


# --- save_compressed -------------------------------------------------------------------------


def _mixed(seed: int) -> nn.Module:
    model = build("llama", seed)
    so.sparsify(model, "bitmap", density=0.4, filter=lambda n, m: "self_attn" in n)
    so.sparsify(model, "csr", density=0.3, filter=lambda n, m: "gate" in n)
    so.sparsify(model, "bsr", density=0.5, blocksize=(16, 16), filter=lambda n, m: "up" in n)
    so.sparsify(model, "nm", n=2, m=4)  # the down projections
    return model


@pytest.mark.parametrize("kind", ["mixed", "2:4"])
def test_save_compressed_round_trips_through_the_real_decompressor(tmp_path, kind):
    seed = draw_seed()
    model = _mixed(seed) if kind == "mixed" else so.sparsify(build("llama", seed), "nm", n=2,
                                                             m=4)
    x = ids(seed)
    want = out_of(model, x)
    sparse = [n for n, m in model.named_modules() if isinstance(m, so.SparseLinear)]
    assert len(sparse) == 14
    so.save_compressed(model, tmp_path, max_shard_size="50KB")
    config = json.loads((tmp_path / "config.json").read_text())
    fmt = config["quantization_config"]["sparsity_config"]["format"]
    assert fmt == ("sparse-bitmask" if kind == "mixed" else "sparse-24-bitmask")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    ref = ct_decompressed(LlamaForCausalLM, tmp_path)  # the writer's decompressor
    assert config["quantization_config"]["sparsity_config"]["targets"] == sparse
    for name in sparse:
        assert torch.equal(ref.get_submodule(name).weight, model.get_submodule(name).weight), name
    assert rel_err(out_of(ref, x), want) < 1e-5
    back = so.load_compressed(LlamaForCausalLM, tmp_path)
    assert back.sparsified == sparse
    assert torch.equal(out_of(back, x), out_of(so.load_compressed(LlamaForCausalLM, tmp_path),
                                               x))
    assert rel_err(out_of(back, x), want) < 1e-5
    for name in sparse:  # bitmap (and, as 2:4, 2:4) layers come back bit for bit
        src, dst = model.get_submodule(name), back.get_submodule(name)
        assert dst.layout == ("bitmap" if fmt == "sparse-bitmask" else "nm")
        assert torch.equal(dst.weight, src.weight), name
        if src.layout == dst.layout:
            for t in ("values", *src.structure_names):
                assert torch.equal(getattr(dst, t), getattr(src, t)), (name, t)


def test_save_compressed_errors(tmp_path):
    model = so.sparsify(build("llama", 0), "bitmap", density=0.5)
    with pytest.raises(ValueError, match="sparse-24-bitmask holds 2:4 layers"):
        so.save_compressed(model, tmp_path, format="sparse-24-bitmask")
    with pytest.raises(ValueError, match="'dense' cannot hold"):
        so.save_compressed(model, tmp_path, format="dense")
    with pytest.raises(ValueError, match="format"):
        so.save_compressed(model, tmp_path, format="marlin-24")
    with pytest.raises(TypeError, match="model"):
        so.save_compressed("model", tmp_path)  # type: ignore[arg-type]
    dense = build("llama", 0)
    so.save_compressed(dense, tmp_path / "d")
    cfg = json.loads((tmp_path / "d" / "config.json").read_text())
    assert cfg["quantization_config"]["sparsity_config"]["format"] == "dense"
    assert torch.equal(out_of(so.load_compressed(LlamaForCausalLM, tmp_path / "d"), ids(1)),
                       out_of(dense, ids(1)))


# --- peak memory ---------------------------------------------------------------------------

MEMORY_SCRIPT = textwrap.dedent("""
    import ctypes, gc, json, sys
    import torch
    from transformers import LlamaForCausalLM
    import sparse_ops as so

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024

    def reset_peak():
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM := VmRSS
        return status("VmRSS")

    so.load_compressed(LlamaForCausalLM, sys.argv[2])  # warm-up on a small checkpoint
    base = reset_peak()
    model = so.load_compressed(LlamaForCausalLM, sys.argv[1])
    peak = status("VmHWM")
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
                for t in [*model.parameters(), *model.buffers()]}
    # The control: densifying one layer must show up in the same measurement.
    base2 = reset_peak()
    w = model.get_submodule("model.layers.0.mlp.up_proj").weight
    peak2 = status("VmHWM")
    print(json.dumps({"extra": peak - base - sum(storages.values()),
                      "densified": peak2 - base2, "layer": w.numel() * w.element_size(),
                      "sparse": model.sparsified}))
""")


@pytest.mark.parametrize("fmt", ["sparse-bitmask", "sparse-24-bitmask"])
def test_peak_memory_of_a_load_is_below_one_dense_layer(tmp_path, fmt, llama_bitmask):
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux /proc/self/clear_refs to reset the peak RSS")
    torch.manual_seed(draw_seed())
    cfg = llama_config(hidden_size=1024, intermediate_size=4096, num_hidden_layers=1,
                       num_attention_heads=8, num_key_value_heads=8)
    model = prune_model(LlamaForCausalLM(cfg).eval(), fmt)
    ct_write(model, tmp_path, fmt)
    del model
    small, _ = llama_bitmask
    # From outside the repository, as a user runs it: the installed names only.
    proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path), str(small)],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    layer = 4096 * 1024 * 4  # the largest dense layer of the model: 16 MiB in fp32
    assert r["layer"] == layer and len(r["sparse"]) == 7
    print(f"{fmt}: extra {r['extra'] / 2**20:.1f} MiB, densifying one layer "
          f"{r['densified'] / 2**20:.1f} MiB, dense layer {layer / 2**20:.0f} MiB")
    assert r["extra"] < layer / 2
    assert r["densified"] >= layer * 0.9  # the measurement sees one dense layer
