"""Hugging Face models (tiny configs, random weights): what sparsify swaps and keeps, ties,
the save_sparse / load_sparse round trip, densify."""

from __future__ import annotations

import json
import os

import pytest
import torch
from torch import nn

import sparse_ops as so
from tests.helpers import rel_err

transformers = pytest.importorskip("transformers")
from transformers import (  # noqa: E402
    BertConfig,
    BertForMaskedLM,
    BertModel,
    LlamaConfig,
    LlamaForCausalLM,
)

SEED = int.from_bytes(os.urandom(4), "little")
LLAMA_PROJ = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
              "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
BERT_PROJ = ("attention.self.query", "attention.self.key", "attention.self.value",
             "attention.output.dense", "intermediate.dense", "output.dense")


def llama(tie: bool = False, seed: int = SEED) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, vocab_size=256,
                      tie_word_embeddings=tie)
    return LlamaForCausalLM(cfg).eval()


def bert_config() -> BertConfig:
    return BertConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, vocab_size=256, max_position_embeddings=64)


def ids(batch: int = 2, seq: int = 11) -> torch.Tensor:
    return torch.randint(0, 256, (batch, seq), generator=torch.Generator().manual_seed(SEED))


def test_llama_every_projection_swapped_lm_head_and_embeddings_dense():
    print("seed", SEED)
    model = llama()
    so.sparsify(model, "csr", density=0.5)
    want = [f"model.layers.{i}.{p}" for i in range(2) for p in LLAMA_PROJ]
    assert model.sparsified == want
    assert list(model.sparsify_skipped) == ["lm_head"]
    assert type(model.lm_head) is nn.Linear
    assert type(model.model.embed_tokens) is nn.Embedding
    logits = model(ids()).logits
    assert logits.shape == (2, 11, 256) and bool(torch.isfinite(logits).all())
    out = model.generate(ids(1, 5), max_new_tokens=4, do_sample=False)
    assert out.shape == (1, 9)


def test_llama_tied_lm_head_left_dense_and_tie_weights_works():
    model = llama(tie=True)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    so.sparsify(model, "nm", n=2, m=4, keep_dense=())  # no name rule: the tie alone keeps it
    assert "lm_head" in model.sparsify_skipped
    assert "tied" in model.sparsify_skipped["lm_head"]
    assert "model.embed_tokens.weight" in model.sparsify_skipped["lm_head"]
    assert len(model.sparsified) == 14
    model.tie_weights()
    assert model.lm_head.weight is model.model.embed_tokens.weight


def test_llama_untied_lm_head_sparsified_when_asked():
    model = llama()
    so.sparsify(model, "csr", density=0.5, keep_dense=())
    assert "lm_head" in model.sparsified and not model.sparsify_skipped


def test_bert_every_projection_swapped():
    torch.manual_seed(SEED)
    model = BertModel(bert_config()).eval()
    so.sparsify(model, "bsr", density=0.5, blocksize=(16, 16))
    want = [f"encoder.layer.{i}.{p}" for i in range(2) for p in BERT_PROJ] + ["pooler.dense"]
    assert model.sparsified == want and not model.sparsify_skipped
    out = model(ids(), attention_mask=torch.ones(2, 11, dtype=torch.long))
    assert out.last_hidden_state.shape == (2, 11, 64)


def test_bert_mlm_decoder_tied_left_dense():
    torch.manual_seed(SEED)
    model = BertForMaskedLM(bert_config()).eval()
    so.sparsify(model, "csr", density=0.3, keep_dense=())
    dec = "cls.predictions.decoder"
    assert dec in model.sparsify_skipped and "tied" in model.sparsify_skipped[dec]
    assert "cls.predictions.transform.dense" in model.sparsified
    assert len([n for n in model.sparsified if n.startswith("bert.encoder")]) == 12
    model.tie_weights()
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    # The default keeps it dense by name (output embeddings) before the tie is looked at.
    torch.manual_seed(SEED)
    model2 = so.sparsify(BertForMaskedLM(bert_config()), "csr", density=0.3)
    assert "output embeddings" in model2.sparsify_skipped[dec]


def test_wanda_on_llama_with_a_dict_batch():
    print("seed", SEED)
    model = llama()
    x = ids(3, 13)
    batch = {"input_ids": x, "attention_mask": torch.ones_like(x)}
    so.sparsify(model, "nm", n=2, m=4, method="wanda", calibration=batch)
    assert len(model.sparsified) == 14
    assert not any(m._forward_pre_hooks for m in model.modules())
    mag = so.sparsify(llama(), "nm", n=2, m=4)
    q = "model.layers.0.self_attn.q_proj"
    assert not torch.equal(model.get_submodule(q).weight != 0, mag.get_submodule(q).weight != 0)


@pytest.mark.parametrize("tie", [False, True])
def test_save_sparse_load_sparse_round_trip(tmp_path, tie):
    print("seed", SEED)
    model = llama(tie=tie)
    so.sparsify(model, "csr", density=0.4, distribution="erk")
    x = ids()
    want = model(x).logits
    so.save_sparse(model, tmp_path)
    assert (tmp_path / "config.json").is_file()
    # From the class: built from the saved config.
    back = so.load_sparse(LlamaForCausalLM, tmp_path)
    assert back.sparsified == model.sparsified
    assert back.sparsify_skipped == model.sparsify_skipped
    assert torch.equal(back(x).logits, want)
    if tie:
        assert back.lm_head.weight is back.model.embed_tokens.weight
    # Into a fresh dense instance with other random weights.
    other = llama(tie=tie, seed=SEED + 1)
    assert not torch.equal(other(x).logits, want)
    so.load_sparse(other, tmp_path)
    assert isinstance(other.model.layers[1].mlp.down_proj, so.SparseLinear)
    assert torch.equal(other(x).logits, want)


def test_save_pretrained_alone_loses_the_sparse_weights(tmp_path):
    """The problem load_sparse solves: from_pretrained re-initialises every swapped layer."""
    model = so.sparsify(llama(), "csr", density=0.5)
    x = ids()
    want = model(x).logits
    model.save_pretrained(tmp_path)
    back = LlamaForCausalLM.from_pretrained(tmp_path).eval()
    assert type(back.model.layers[0].self_attn.q_proj) is nn.Linear
    assert rel_err(back(x).logits, want) > 1e-2


def test_load_sparse_bf16_and_bsr_nm(tmp_path):
    model = llama().to(torch.bfloat16)
    so.sparsify(model, "bsr", density=0.5, blocksize=(16, 16),
                filter=lambda name, mod: "mlp" not in name)
    so.sparsify(model, "nm", n=2, m=4)  # the rest (the MLPs) as 2:4
    x = ids()
    want = model(x).logits
    so.save_sparse(model, tmp_path)
    back = so.load_sparse(LlamaForCausalLM, tmp_path)
    assert back.model.layers[0].self_attn.q_proj.layout == "bsr"
    assert back.model.layers[0].mlp.up_proj.layout == "nm"
    assert back.model.layers[0].mlp.up_proj.values.dtype == torch.bfloat16
    assert torch.equal(back(x).logits, want)


def test_load_sparse_errors(tmp_path):
    model = so.sparsify(llama(), "csr", density=0.5)
    so.save_sparse(model, tmp_path / "a")
    with pytest.raises(ValueError, match="directory"):
        so.load_sparse(llama(), tmp_path / "nothing")
    with pytest.raises(TypeError, match="model"):
        so.load_sparse(dict, tmp_path / "a")
    wrong = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4,
                                         num_key_value_heads=4, vocab_size=256))
    with pytest.raises(ValueError, match="shape"):
        so.load_sparse(wrong, tmp_path / "a")
    with pytest.raises(TypeError, match="model"):
        so.save_sparse("model", tmp_path / "b")


def test_bitmap_wanda_llama_round_trip_and_generate(tmp_path):
    """The bitmap layout end to end: wanda-pruned from a calibration batch, logits against
    the densified twin, a save_sparse / load_sparse round trip, greedy generation."""
    print("seed", SEED)
    model = llama()
    x = ids(3, 13)
    so.sparsify(model, "bitmap", density=0.5, method="wanda", calibration=x)
    assert len(model.sparsified) == 14
    q = model.get_submodule("model.layers.0.self_attn.q_proj")
    assert q.layout == "bitmap" and isinstance(q.sparse_weight(), so.BitmapMatrix)
    assert int((q.weight != 0).sum(1).max()) == 32  # wanda: density * K in every row
    want = model(x).logits
    twin = so.densify(llama())  # same architecture; gets the pruned weights below
    twin.load_state_dict({k: v for k, v in _dense_state(model).items()})
    assert rel_err(twin(x).logits, want) < 1e-5
    so.save_sparse(model, tmp_path)
    back = so.load_sparse(LlamaForCausalLM, tmp_path)
    assert back.model.layers[1].mlp.down_proj.layout == "bitmap"
    assert torch.equal(back(x).logits, want)
    assert torch.equal(back.generate(ids(1, 5), max_new_tokens=4, do_sample=False),
                       model.generate(ids(1, 5), max_new_tokens=4, do_sample=False))


def _dense_state(model: nn.Module) -> dict:
    """The state dict of ``model`` with every SparseLinear as a dense ``weight`` (+ bias)."""
    out = {}
    for name, mod in model.named_modules():
        for pname, p in mod.named_parameters(recurse=False):
            if not isinstance(mod, so.SparseLinear):
                out[f"{name}.{pname}" if name else pname] = p.detach()
        if isinstance(mod, so.SparseLinear):
            out[f"{name}.weight"] = mod.weight.detach()
            if mod.bias is not None:
                out[f"{name}.bias"] = mod.bias.detach()
    return out


@pytest.mark.parametrize("layout,kw", [("csr", {"density": 0.3}), ("nm", {"n": 2, "m": 4}),
                                       ("bitmap", {"density": 0.5}),
                                       ("bsr", {"density": 0.5, "blocksize": (16, 16)})])
def test_densify_matches_sparse_logits(layout, kw):
    print("seed", SEED)
    model = so.sparsify(llama(), layout, **kw)
    x = ids()
    want = model(x).logits
    pruned = {n: model.get_submodule(n).weight.detach().clone() for n in model.sparsified}
    so.densify(model)
    assert not any(isinstance(m, so.SparseLinear) for m in model.modules())
    assert model.densified == list(pruned) and model.sparsified == []
    for name, w in pruned.items():
        lin = model.get_submodule(name)
        assert type(lin) is nn.Linear and torch.equal(lin.weight, w)
    assert rel_err(model(x).logits, want) < 1e-5
    # A densified model saves and loads with plain save_pretrained / from_pretrained.
    sd = model.state_dict()
    assert "model.layers.0.self_attn.q_proj.weight" in sd


def test_densify_bert_float64_reference():
    torch.manual_seed(SEED)
    model = BertModel(bert_config()).eval()
    so.sparsify(model, "csr", density=0.25)
    x = ids()
    got = model(x).last_hidden_state
    ref = so.densify(model).double()(x).last_hidden_state
    assert rel_err(got, ref) < 1e-5


# --- the files save_sparse writes: safetensors, never a pickle ------------------------------


def _pickle_files(directory) -> list[str]:
    """Files that hold a pickle (a zip with a data.pkl, or the pickle protocol's magic)."""
    import zipfile

    out = []
    for p in directory.rglob("*"):
        if not p.is_file():
            continue
        head = p.read_bytes()[:2]
        if head[:1] == b"\x80" or (zipfile.is_zipfile(p) and any(
                n.endswith(".pkl") for n in zipfile.ZipFile(p).namelist())):
            out.append(p.name)
    return out


def test_save_sparse_writes_safetensors_and_no_pickle(tmp_path):
    from safetensors.torch import load_file

    model = so.sparsify(llama(tie=True), "bitmap", density=0.5)
    x = ids()
    want = model(x).logits
    so.save_sparse(model, tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "sparse_ops_state.safetensors" in names and not any(n.endswith(".pt") for n in names)
    assert _pickle_files(tmp_path) == []
    state = load_file(str(tmp_path / "sparse_ops_state.safetensors"))  # the real reader
    assert "model.layers.0.self_attn.q_proj.bitmap" in state
    assert "lm_head.weight" not in state  # tied to the embeddings: stored once
    manifest = json.loads((tmp_path / "sparse_ops.json").read_text())
    assert manifest["format"] == 2
    back = so.load_sparse(LlamaForCausalLM, tmp_path)
    assert back.lm_head.weight is back.model.embed_tokens.weight
    assert torch.equal(back(x).logits, want)


def test_save_sparse_shards_past_a_size(tmp_path):
    model = so.sparsify(llama(), "nm", n=2, m=4)
    x = ids()
    want = model(x).logits
    so.save_sparse(model, tmp_path, max_shard_size="30KB")
    shards = sorted(tmp_path.glob("sparse_ops_state-*-of-*.safetensors"))
    index = json.loads((tmp_path / "sparse_ops_state.safetensors.index.json").read_text())
    assert len(shards) >= 3 and set(index["weight_map"].values()) == {p.name for p in shards}
    assert not (tmp_path / "sparse_ops_state.safetensors").exists()
    assert torch.equal(so.load_sparse(LlamaForCausalLM, tmp_path)(x).logits, want)
    # Saving again unsharded into the same directory leaves no stale shard behind.
    so.save_sparse(model, tmp_path)
    assert not list(tmp_path.glob("sparse_ops_state-*")) and _pickle_files(tmp_path) == []
    assert torch.equal(so.load_sparse(LlamaForCausalLM, tmp_path)(x).logits, want)


def _as_format_1(directory) -> None:
    """Turn a save_sparse directory into the first format: the state as a torch.save pickle."""
    from sparse_ops.safetensors_files import Checkpoint

    manifest = json.loads((directory / "sparse_ops.json").read_text())
    state = Checkpoint(directory, "sparse_ops_state").read_all()
    for group in manifest["tied"]:
        for n in group[1:]:
            state[n] = state[group[0]]
    torch.save(state, directory / "sparse_ops_state.pt")
    (directory / "sparse_ops_state.safetensors").unlink()
    manifest["format"] = 1
    (directory / "sparse_ops.json").write_text(json.dumps(manifest))


def test_an_old_pt_checkpoint_loads_with_weights_only(tmp_path):
    model = so.sparsify(llama(), "csr", density=0.4)
    x = ids()
    want = model(x).logits
    so.save_sparse(model, tmp_path)
    _as_format_1(tmp_path)
    back = so.load_sparse(LlamaForCausalLM, tmp_path)
    assert torch.equal(back(x).logits, want)


class _NotATensor:
    """An object torch.load(weights_only=True) must refuse (any class, in a real attack)."""


def test_an_old_pt_checkpoint_with_objects_gets_a_clear_message(tmp_path):
    model = so.sparsify(llama(), "csr", density=0.4)
    so.save_sparse(model, tmp_path)
    _as_format_1(tmp_path)
    state = torch.load(tmp_path / "sparse_ops_state.pt", weights_only=True)
    state["evil"] = _NotATensor()
    torch.save(state, tmp_path / "sparse_ops_state.pt")
    with pytest.raises(ValueError, match=r"weights_only=True\) cannot read .*save it again "
                                         r"with so\.save_sparse"):
        so.load_sparse(llama(), tmp_path)


def test_load_sparse_checks_the_manifest_and_state_files(tmp_path):
    so.save_sparse(so.sparsify(llama(), "csr", density=0.4), tmp_path)
    state = tmp_path / "sparse_ops_state.safetensors"
    data = state.read_bytes()
    state.write_bytes(data[:-64])
    with pytest.raises(ValueError, match="truncated"):
        so.load_sparse(llama(), tmp_path)
    state.unlink()
    with pytest.raises(ValueError, match="holds no sparse_ops_state.safetensors"):
        so.load_sparse(llama(), tmp_path)
    (tmp_path / "sparse_ops.json").write_text('{"format": 9}')
    with pytest.raises(ValueError, match="format 9"):
        so.load_sparse(llama(), tmp_path)


@pytest.mark.parametrize("layout,kw,group_size", [("nm", {"n": 2, "m": 4}, None),
                                                  ("bitmap", {"density": 0.5}, 32),
                                                  ("bsr", {"density": 0.5, "blocksize": (16, 16)},
                                                   32)])
def test_llama_int8_sparsify_save_load_from_class(tmp_path, layout, kw, group_size):
    """A held-out Llama in bf16, pruned then int8: logits against the bf16 sparse model within
    int8's error (< 3 %, stated; the per-layer errors are in model.sparsify_quant_errors), and
    a save_sparse / load_sparse(LlamaForCausalLM, ...) round trip that keeps int8 layers."""
    print("seed", SEED)
    base = llama().to(torch.bfloat16)
    x = ids()
    ref = so.sparsify(llama().to(torch.bfloat16), layout, **kw)
    model = so.sparsify(base, layout, weight_dtype="int8", group_size=group_size, **kw)
    assert all(model.get_submodule(n).values.dtype == torch.int8 for n in model.sparsified)
    assert all(e < 0.02 for e in model.sparsify_quant_errors.values())
    with torch.no_grad():
        got, want = model(x).logits, ref(x).logits
    assert rel_err(got, want) < 0.03
    so.save_sparse(model, tmp_path / "ck")
    back = so.load_sparse(LlamaForCausalLM, tmp_path / "ck")
    layer = back.get_submodule(model.sparsified[0])
    assert layer.values.dtype == torch.int8 and layer.group_size == group_size
    with torch.no_grad():
        torch.testing.assert_close(back(x).logits, got)
