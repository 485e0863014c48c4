"""Whole-model benchmark: sparsified Hugging Face models from configs, random weights.

    python -m bench.models                 # TinyLlama shapes (8 layers) + BERT-base (4 layers)
    python -m bench.models --quick         # tiny shapes (CI smoke run, with --no-compile)
    python -m bench.models --no-compile    # skip the torch.compile rows

Models (built from configs, seed 0, no download): ``LlamaForCausalLM`` with hidden 2048,
intermediate 5632, 32 heads, 4 key/value heads, 8 layers, vocab 32000 (TinyLlama's shapes with
fewer layers), and ``BertModel`` (BERT-base: hidden 768, 12 heads, intermediate 3072, 4 layers).
Each is run dense and sparsified (``so.sparsify``, magnitude pruning: CSR at density 0.5 and
0.3, 2:4, BSR 32x32 at 0.3, and bitmap at 0.5 and 0.3 when the ``"bitmap"`` layout exists),
in fp32 and bf16, eager and under ``torch.compile``:

- decoder: the prompt (prefill) latency, ``generate(max_new_tokens=1)`` on a 128-token prompt,
  and batch-1 greedy ``generate(max_new_tokens=64, do_sample=False)``: ``gen tok/s`` = 64 /
  its time, ``decode tok/s`` = 63 / (its time - the prefill time). Compiled rows compile
  ``model.forward`` and generate with a static cache.
- encoder: forward latency at batch 1, sequence 128.
- correctness: the logits (last hidden state for BERT) on the prompt against the same model
  densified (``so.densify``: a dense ``nn.Linear`` holding the same pruned weights; must be
  < 1e-4 relative in fp32) and against the unpruned model (reported: what pruning costs).
  Compiled rows report the share of generated tokens equal to the eager run's (decoder) or the
  relative error against eager (encoder).
- bytes per token: the weight bytes a forward reads, dense (every Linear, ``lm_head``
  included) over sparse (``S.nbytes`` for each sparse layer, the dense layers as they are):
  the bound on the speed-up of a memory-bound decode step.

Times are medians over ``--repeat`` runs after a warm-up; the eager variants of one model and
dtype take turns run by run (ABAB..), so a drift of the host cannot favour one of them
(compiled rows are measured after, each on its own). Writes ``bench/out/<cpu>-<simd>/models.json``
and ``.md`` (``--out`` elsewhere), with the CPU (vendor, model, SIMD level) and thread count.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import sparse_ops as so
from bench import targets
from bench.host import cpu_model, header, out_dir
from bench.int8 import Int8PackLinear, dequantized_model, int8pack_model

SEED = 0
TOL = {"float32": 1e-4, "bfloat16": 3e-2}  # sparse vs densified-same-weights logits
TOL_W8A8 = 1e-1  # int8 activations (per token) against float ones, through every layer


@dataclass(frozen=True)
class Variant:
    name: str
    layout: str | None
    kwargs: dict[str, Any] = field(default_factory=dict)
    # logits' relative error allowed against the densified twin (default: TOL by dtype)
    tol: float | None = None


VARIANTS = [
    Variant("dense", None),
    Variant("csr 0.5", "csr", {"density": 0.5}),
    Variant("csr 0.3", "csr", {"density": 0.3}),
    Variant("2:4", "nm", {"n": 2, "m": 4}),
    Variant("bsr 32x32 0.3", "bsr", {"density": 0.3, "blocksize": (32, 32)}),
    Variant("bitmap 0.5", "bitmap", {"density": 0.5}),
    Variant("bitmap 0.3", "bitmap", {"density": 0.3}),
    # int8 weights (issue 23): torch's dense int8 weight-only product, and sparse + int8
    Variant("int8 dense", "int8pack"),
    Variant("bitmap 0.5 int8", "bitmap", {"density": 0.5, "weight_dtype": "int8"}),
    Variant("2:4 int8", "nm", {"n": 2, "m": 4, "weight_dtype": "int8"}),
    Variant("csr 0.3 int8", "csr", {"density": 0.3, "weight_dtype": "int8"}),
    Variant("bsr 32x32 0.3 int8", "bsr", {"density": 0.3, "blocksize": (32, 32),
                                          "weight_dtype": "int8"}),
    # W8A8: activations quantized per token too, where measured faster (prefill); the twin
    # keeps float activations, so the error holds the activations' quantization (TOL_W8A8)
    Variant("bitmap 0.5 int8 W8A8", "bitmap", {"density": 0.5, "weight_dtype": "int8",
                                               "activation_dtype": "int8"}, tol=TOL_W8A8),
    Variant("2:4 int8 W8A8", "nm", {"n": 2, "m": 4, "weight_dtype": "int8",
                                    "activation_dtype": "int8"}, tol=TOL_W8A8),
    Variant("bsr 32x32 0.3 int8 W8A8", "bsr", {"density": 0.3, "blocksize": (32, 32),
                                               "weight_dtype": "int8",
                                               "activation_dtype": "int8"}, tol=TOL_W8A8),
]


@dataclass
class Shapes:
    llama: dict[str, int]
    bert: dict[str, int]
    prompt: int
    new_tokens: int
    seq: int


FULL = Shapes(
    llama={"hidden_size": 2048, "intermediate_size": 5632, "num_attention_heads": 32,
           "num_key_value_heads": 4, "num_hidden_layers": 8, "vocab_size": 32000},
    bert={"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
          "num_hidden_layers": 4, "vocab_size": 30522},
    prompt=128, new_tokens=64, seq=128,
)
QUICK = Shapes(
    llama={"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
           "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 256},
    bert={"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
          "num_hidden_layers": 2, "vocab_size": 256},
    prompt=16, new_tokens=8, seq=16,
)


@dataclass
class Row:
    """One line of the table. Times in ms; errors are norm-wise relative errors."""

    model: str
    dtype: str
    variant: str
    compiled: bool
    prefill_ms: float | None = None
    gen_tok_s: float | None = None
    decode_tok_s: float | None = None
    forward_ms: float | None = None
    compile_s: float | None = None
    dense_weight_mb: float = 0.0
    sparse_weight_mb: float = 0.0
    bytes_ratio: float = 1.0
    err_vs_pruned_dense: float | None = None
    err_vs_unpruned: float | None = None
    ok: bool | None = None
    vs_eager: float | None = None
    vs_dense: float | None = None  # decode tok/s (encoder: forward) over the dense row's
    prefill_vs_dense: float | None = None
    of_bound: float | None = None  # vs_dense / bytes_ratio (decoder)
    note: str = ""


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.double(), want.double()
    denom = want.norm().item()
    return (got - want).norm().item() / (denom if denom > 0 else 1.0)


def median_time(fn: Callable[[], Any], repeat: int, warmup: int = 1) -> tuple[float, Any]:
    """Median seconds of ``fn()`` over ``repeat`` runs after ``warmup`` runs, and its result."""
    out = None
    for _ in range(warmup):
        out = fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples), out


def weight_bytes(model: nn.Module) -> tuple[int, int]:
    """(dense bytes, stored bytes) of the weights of every Linear / SparseLinear."""
    dense = stored = 0
    for mod in model.modules():
        if isinstance(mod, so.SparseLinear):
            s = mod.sparse_weight()
            size = (s.values.element_size() if s.scales is None
                    else (mod.bias if mod.bias is not None else s.scales).element_size())
            dense += mod.out_features * mod.in_features * size
            stored += s.nbytes
        elif isinstance(mod, Int8PackLinear):
            dense += mod.out_features * mod.in_features * mod.scales.element_size()
            stored += mod.nbytes
        elif isinstance(mod, nn.Linear):
            b = mod.weight.numel() * mod.weight.element_size()
            dense += b
            stored += b
    return dense, stored


def known_layouts() -> tuple[str, ...]:
    from sparse_ops.registry import names

    return names()


def build(kind: str, shapes: Shapes) -> nn.Module:
    from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(SEED)
    if kind == "llama":
        cfg = LlamaConfig(**shapes.llama, tie_word_embeddings=False,
                          max_position_embeddings=max(256, 2 * (shapes.prompt
                                                                + shapes.new_tokens)))
        model = LlamaForCausalLM(cfg)
        model.generation_config.pad_token_id = 0
    else:
        cfg = BertConfig(**shapes.bert, max_position_embeddings=max(512, shapes.seq))
        model = BertModel(cfg, add_pooling_layer=False)
    return model.eval()


def outputs(model: nn.Module, kind: str, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        if kind == "llama":
            return model(x, use_cache=False).logits.float()
        return model(x).last_hidden_state.float()


def prepare_variant(kind: str, base: nn.Module, ref_out: torch.Tensor, v: Variant, dtype: str,
                    x: torch.Tensor, skipped_log: dict[str, dict[str, str]]
                    ) -> tuple[nn.Module, Row, torch.Tensor]:
    """The variant's model (sparsified copy of ``base``), its row with bytes and errors, and
    its eager output on ``x``."""
    label = "Llama" if kind == "llama" else "BERT"
    row = Row(label, dtype, v.name, False)
    model = copy.deepcopy(base)
    t0 = time.perf_counter()
    if v.layout == "int8pack":
        int8pack_model(model)
        row.note = "aten._weight_int8pack_mm, per-row int8"
    elif v.layout is not None:
        so.sparsify(model, v.layout, **v.kwargs)
        skipped_log.setdefault(label, dict(model.sparsify_skipped))
        row.note = f"sparsify {time.perf_counter() - t0:.1f}s, {len(model.sparsified)} layers"
    dense_b, stored_b = weight_bytes(model)
    row.dense_weight_mb, row.sparse_weight_mb = dense_b / 2**20, stored_b / 2**20
    row.bytes_ratio = dense_b / stored_b
    out = outputs(model, kind, x)
    row.err_vs_unpruned = rel_err(out, ref_out)
    if v.layout == "int8pack":
        twin = dequantized_model(copy.deepcopy(model))
        row.err_vs_pruned_dense = rel_err(out, outputs(twin, kind, x))
        row.ok = row.err_vs_pruned_dense < TOL[dtype]
        del twin
    elif v.layout is not None:
        densified = so.densify(copy.deepcopy(model))
        row.err_vs_pruned_dense = rel_err(out, outputs(densified, kind, x))
        row.ok = row.err_vs_pruned_dense < (v.tol if v.tol is not None else TOL[dtype])
        del densified
    return model, row, out


def measure_alternated(kind: str, models: list[nn.Module], rows: list[Row], shapes: Shapes,
                       x: torch.Tensor, repeat: int) -> list[torch.Tensor | None]:
    """Eager timings of every variant, the variants taking turns run by run (ABAB..): a drift
    of the host falls on all of them alike. Fills the rows; returns the generated tokens."""
    prefill: list[list[float]] = [[] for _ in models]
    full: list[list[float]] = [[] for _ in models]
    tokens: list[torch.Tensor | None] = [None for _ in models]

    def gen(model: nn.Module, k: int) -> torch.Tensor:
        return model.generate(x, max_new_tokens=k, min_new_tokens=k, do_sample=False)

    with torch.no_grad():
        for model in models:  # warm-up
            model(x) if kind == "bert" else gen(model, 2)
        for _ in range(repeat):
            for j, model in enumerate(models):
                if kind == "bert":
                    t0 = time.perf_counter()
                    model(x)
                    prefill[j].append(time.perf_counter() - t0)
                    continue
                t0 = time.perf_counter()
                gen(model, 1)
                prefill[j].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                out = gen(model, shapes.new_tokens)
                full[j].append(time.perf_counter() - t0)
                tokens[j] = out[:, x.shape[1]:]
    for j, row in enumerate(rows):
        if kind == "bert":
            row.forward_ms = 1e3 * statistics.median(prefill[j])
            continue
        p, f = statistics.median(prefill[j]), statistics.median(full[j])
        row.prefill_ms = 1e3 * p
        row.gen_tok_s = shapes.new_tokens / f
        row.decode_tok_s = (shapes.new_tokens - 1) / max(f - p, 1e-9)
    dense = rows[0]
    for row in rows:  # against the dense row of the same run; bound = the bytes ratio
        if kind == "bert":
            row.vs_dense = dense.forward_ms / row.forward_ms
        else:
            row.vs_dense = row.decode_tok_s / dense.decode_tok_s
            row.prefill_vs_dense = dense.prefill_ms / row.prefill_ms
            row.of_bound = row.vs_dense / row.bytes_ratio
    return tokens


def run_compiled(kind: str, model: nn.Module, row: Row, shapes: Shapes, x: torch.Tensor,
                 repeat: int, eager_out: torch.Tensor, eager_tokens: torch.Tensor | None
                 ) -> Row:
    """The variant under torch.compile (measured on its own, after the eager rows)."""
    crow = Row(row.model, row.dtype, row.variant, True, dense_weight_mb=row.dense_weight_mb,
               sparse_weight_mb=row.sparse_weight_mb, bytes_ratio=row.bytes_ratio)
    torch._dynamo.reset()
    graphs0 = torch._dynamo.utils.counters["stats"]["unique_graphs"]  # cumulative counter
    try:
        tokens = measure(kind, model, crow, shapes, x, repeat, compiled=True,
                         eager_out=eager_out)
        if kind == "llama" and eager_tokens is not None:
            crow.vs_eager = float((tokens == eager_tokens).float().mean())
        graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"] - graphs0
        crow.note = f"{graphs} graph(s) compiled"
    except Exception as e:  # report, do not hide: the row says why
        crow.note = f"torch.compile failed: {type(e).__name__}: {str(e)[:200]}"
    torch._dynamo.reset()
    return crow


def measure(kind: str, model: nn.Module, row: Row, shapes: Shapes, x: torch.Tensor,
            repeat: int, compiled: bool, eager_out: torch.Tensor | None = None) -> Any:
    if kind == "bert":
        fn: Callable[[nn.Module], Any] = model
        if compiled:
            fn = torch.compile(model)
            t0 = time.perf_counter()
            with torch.no_grad():
                got = fn(x).last_hidden_state.float()
            row.compile_s = time.perf_counter() - t0
            row.vs_eager = rel_err(got, eager_out) if eager_out is not None else None
        with torch.no_grad():
            row.forward_ms = 1e3 * median_time(lambda: fn(x), repeat)[0]
        return None

    forward = model.forward
    if compiled:
        model.forward = torch.compile(forward)
    cache_len = x.shape[1] + shapes.new_tokens
    try:
        with torch.no_grad():
            def gen(k: int) -> torch.Tensor:
                kw: dict[str, Any] = {}
                if compiled:  # one cache size for every k: the same two graphs throughout
                    from transformers import StaticCache

                    kw["past_key_values"] = StaticCache(model.config, max_cache_len=cache_len)
                return model.generate(x, max_new_tokens=k, min_new_tokens=k, do_sample=False,
                                      **kw)

            t0 = time.perf_counter()
            gen(2)  # warm-up; compiled: compiles the prefill and the decode-step graphs
            if compiled:
                row.compile_s = time.perf_counter() - t0
            prefill, _ = median_time(lambda: gen(1), repeat, warmup=0)
            full, tokens = median_time(lambda: gen(shapes.new_tokens), repeat, warmup=0)
            tokens = tokens[:, x.shape[1]:]
    finally:
        model.forward = forward
    row.prefill_ms = 1e3 * prefill
    row.gen_tok_s = shapes.new_tokens / full
    row.decode_tok_s = (shapes.new_tokens - 1) / max(full - prefill, 1e-9)
    return tokens


def fmt(v: Any, spec: str = ".3g") -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "**NO**"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def markdown(meta: dict[str, Any], rows: list[Row], skipped: dict[str, dict[str, str]],
             notes: list[str]) -> str:
    lines = [
        "# Sparsified Hugging Face models (random weights from configs)",
        "",
        f"Machine: {meta.get('machine', meta['cpu'])}; torch {meta['torch']} with "
        f"{meta['threads']} threads; "
        f"transformers {meta['transformers']}; sparse_ops SIMD: {meta['simd']}; "
        f"{'quick shapes' if meta['quick'] else 'full shapes'}; medians of {meta['repeat']} "
        f"runs; wall {meta['wall_s']:.0f} s.",
        "",
        f"Decoder: LlamaForCausalLM {meta['shapes']['llama']}, prompt {meta['shapes']['prompt']}"
        f" tokens, {meta['shapes']['new_tokens']} new tokens, batch 1, greedy. Encoder: "
        f"BertModel {meta['shapes']['bert']}, batch 1, sequence {meta['shapes']['seq']}.",
        "",
        "- `prefill ms`: `generate(max_new_tokens=1)`; `gen tok/s`: new tokens / generate "
        "time; `decode tok/s`: (new tokens - 1) / (generate time - prefill time).",
        "- `bytes ratio`: dense weight bytes read per token / sparse (`S.nbytes`; lm_head and "
        "other dense layers counted dense): the bound on a memory-bound decode speed-up.",
        f"- `err vs pruned-dense`: logits against the same pruned weights in dense `nn.Linear` "
        f"(`so.densify`), must be < {TOL['float32']:g} in fp32 (< {TOL['bfloat16']:g} in "
        "bf16); `err vs unpruned`: against the model before pruning (what pruning costs, "
        "random weights).",
        "- `vs eager`: compiled rows: share of generated tokens equal to eager (decoder), "
        "relative error of the output against eager (encoder).",
        "- `vs dense`: eager decode tok/s (encoder: forward time) against the dense row, the "
        "variants alternated run by run (ABAB..); `of bytes bound`: that over the bytes "
        "ratio.",
        "",
    ]
    lines += [f"> {n}" for n in notes] + ([""] if notes else [])
    head = ["model", "dtype", "variant", "compile", "prefill ms", "gen tok/s", "decode tok/s",
            "fwd ms", "vs dense", "prefill vs dense", "of bytes bound", "compile s",
            "weights MB (dense→stored)", "bytes ratio", "err vs pruned-dense", "ok",
            "err vs unpruned", "vs eager", "note"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([
            r.model, r.dtype, r.variant, "yes" if r.compiled else "no", fmt(r.prefill_ms, ".1f"),
            fmt(r.gen_tok_s, ".2f"), fmt(r.decode_tok_s, ".2f"), fmt(r.forward_ms, ".1f"),
            fmt(r.vs_dense, ".2f"), fmt(r.prefill_vs_dense, ".2f"), fmt(r.of_bound, ".0%"),
            fmt(r.compile_s, ".0f"), f"{r.dense_weight_mb:.1f} → {r.sparse_weight_mb:.1f}",
            f"{r.bytes_ratio:.2f}", fmt(r.err_vs_pruned_dense, ".2e"), fmt(r.ok),
            fmt(r.err_vs_unpruned, ".2e"), fmt(r.vs_eager, ".3g"), r.note,
        ]) + " |")
    lines += ["", "## Left dense by sparsify", ""]
    for model_name, sk in skipped.items():
        if sk:
            lines += [f"- {model_name}:"] + [f"  - `{n}`: {why}" for n, why in sk.items()]
        else:
            lines.append(f"- {model_name}: nothing (every nn.Linear swapped)")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.models", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny shapes (CI smoke run)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    ap.add_argument("--repeat", type=int, default=None,
                    help="runs per median (default 3, quick 2)")
    ap.add_argument("--models", default="llama,bert", help="comma list of llama, bert")
    ap.add_argument("--variants", default=None,
                    help="comma list of variant names (default: all), e.g. 'dense,csr 0.5'")
    ap.add_argument("--dtypes", default="float32,bfloat16", help="comma list")
    ap.add_argument("--prompt", type=int, default=None,
                    help="Llama prompt tokens (default 128, quick 16): a short prompt keeps "
                         "the dense bf16 prefill short on CPUs without native bf16")
    ap.add_argument("--new-tokens", type=int, default=None, help="Llama tokens generated")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads (default: torch's own)")
    ap.add_argument("--report", default="models",
                    help="file stem of the json / markdown written (models_w8a8: the W8A8 rows)")
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default bench/out/<cpu>-<simd>)")
    args = ap.parse_args(argv)
    shapes = QUICK if args.quick else FULL
    if args.prompt is not None or args.new_tokens is not None:
        shapes = dataclasses.replace(
            shapes, prompt=args.prompt or shapes.prompt,
            new_tokens=args.new_tokens or shapes.new_tokens)
    repeat = args.repeat or (2 if args.quick else 3)
    kinds = [k for k in args.models.split(",") if k]
    dtypes = [d for d in args.dtypes.split(",") if d]
    for k in kinds:
        if k not in ("llama", "bert"):
            ap.error(f"--models: unknown model {k!r}")
    for d in dtypes:
        if d not in TOL:
            ap.error(f"--dtypes: unknown dtype {d!r} (float32, bfloat16)")
    if args.threads is not None:
        if args.threads < 1:
            ap.error("--threads: must be >= 1")
        torch.set_num_threads(args.threads)
    import transformers

    start = time.perf_counter()
    layouts = known_layouts()
    notes = []
    variants = [v for v in VARIANTS if v.layout in (None, "int8pack") or v.layout in layouts]
    if args.variants is not None:
        wanted = [w.strip() for w in args.variants.split(",") if w.strip()]
        names = [v.name for v in VARIANTS]
        for w in wanted:
            if w not in names:
                ap.error(f"--variants: unknown variant {w!r} (known: {names})")
        variants = [v for v in variants if v.name in wanted]
    missing = [v.name for v in VARIANTS
               if v.layout not in (None, "int8pack") and v.layout not in layouts]
    if missing:
        notes.append(f"skipped {', '.join(missing)}: layout not known to this build "
                     f"(so.to_sparse knows {layouts})")
    print(f"bench.models: seed {SEED}, CPU {cpu_model()}, {torch.get_num_threads()} threads, "
          f"variants {[v.name for v in variants]}", flush=True)
    rows: list[Row] = []
    skipped: dict[str, dict[str, str]] = {}
    for kind in kinds:
        master = build(kind, shapes)
        g = torch.Generator().manual_seed(SEED)
        vocab = (shapes.llama if kind == "llama" else shapes.bert)["vocab_size"]
        x = torch.randint(0, vocab, (1, shapes.prompt if kind == "llama" else shapes.seq),
                          generator=g)
        for dtype in dtypes:
            base = master if dtype == "float32" else copy.deepcopy(master).to(getattr(torch,
                                                                                       dtype))
            ref_out = outputs(base, kind, x)
            t0 = time.perf_counter()
            prepared = [prepare_variant(kind, base, ref_out, v, dtype, x, skipped)
                        for v in variants]
            models = [p[0] for p in prepared]
            eager = [p[1] for p in prepared]
            tokens = measure_alternated(kind, models, eager, shapes, x, repeat)
            for v, row in zip(variants, eager, strict=True):
                if v.kwargs.get("activation_dtype") == "int8":  # what the measurement chose
                    kept = sorted(f"{2 ** (n - 1)}+ tokens, density {d / 10:.1f}+: {p}"
                                  for (lay, dt, n, d), p in
                                  so.w8a8.kept_choices().items()
                                  if lay == v.layout and dt == dtype)
                    row.note += f"; kept by token bucket {', '.join(kept) or 'none'}"
            for j, (model, row, out) in enumerate(prepared):
                new = [row]
                if not args.no_compile:
                    new.append(run_compiled(kind, model, row, shapes, x, repeat, out, tokens[j]))
                rows += new
                for r in new:
                    print(f"  {kind} {dtype} {r.variant} compiled={r.compiled}: prefill "
                          f"{fmt(r.prefill_ms, '.1f')} ms, gen {fmt(r.gen_tok_s, '.2f')} tok/s, "
                          f"fwd {fmt(r.forward_ms, '.1f')} ms, bytes x{r.bytes_ratio:.2f}, "
                          f"vs dense {fmt(r.vs_dense, '.2f')}, err "
                          f"{fmt(r.err_vs_pruned_dense, '.1e')} {r.note} "
                          f"[{time.perf_counter() - t0:.0f}s]", flush=True)
            del prepared, models
            gc.collect()
            if base is not master:
                del base
            gc.collect()
        del master
        gc.collect()
    simd = "?"
    try:
        from sparse_ops import _C  # type: ignore[attr-defined]

        simd = str(_C.simd_level())
    except Exception:  # the extension's introspection is optional here
        pass
    meta = {
        "machine": header(), "cpu": cpu_model(), "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__, "python": sys.version.split()[0],
        "simd": simd, "quick": args.quick, "repeat": repeat, "seed": SEED,
        "compile": not args.no_compile, "shapes": asdict(shapes),
        "wall_s": time.perf_counter() - start, "pid": os.getpid(),
    }
    out = args.out if args.out is not None else out_dir()
    out.mkdir(parents=True, exist_ok=True)
    data = {"meta": meta, "notes": notes, "skipped": skipped, "rows": [asdict(r) for r in rows]}
    data["targets"] = targets.check("models", data) if not args.quick else []
    (out / f"{args.report}.json").write_text(json.dumps(data, indent=1) + "\n")
    md = markdown(meta, rows, skipped, notes) + "\n" + targets.markdown(data["targets"])
    (out / f"{args.report}.md").write_text(md)
    print(md)
    bad = [r for r in rows if r.ok is False]
    if bad:
        print(f"bench.models: {len(bad)} rows over the error tolerance", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
