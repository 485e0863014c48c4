"""``DynamicSparsity``: prune-and-grow training on the sparse structure itself.

The sparse layers' stored values are the only copy of their weights: an update rewrites each
layer's structure buffers in place and moves its ``values`` Parameter (same object, same
shape: the nnz is kept), its gradient and its optimizer state along. Gradient growth needs
the dense gradient's magnitude at inactive positions; forward hooks keep the inputs ``X`` and
output gradients ``dY`` of the update step (of the last ``momentum_window`` steps for
``"momentum"``), and ``dYᵀ X`` is formed in row tiles with a running top-k, never whole.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..layer import SparseLinear
from .criteria import NEEDS_GRAD, check_criterion, prune_scores, select_prune
from .distributed import active_group, check_same_structure
from .growth import (
    check_growth,
    grad_row_tiles,
    nm_ranked_inactive,
    random_inactive_grid,
    topk_inactive_grid,
)
from .layouts import GridLayer, NMLayer, view_of
from .optimizer_state import remap_inplace, remap_optimizer_state
from .schedule import DropSchedule

_PRUNE_SALT, _GROW_SALT = 1, 2


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel / DataParallel wrapper."""
    inner = getattr(model, "module", None)
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) and isinstance(
        inner, nn.Module
    ):
        return inner
    return model


class DynamicSparsity:
    """Dynamic sparse training of every ``SparseLinear`` of ``model`` (RigL / SET family).

    Call ``dst.step()`` once per training step, after ``optimizer.step()`` and before
    ``optimizer.zero_grad()``. On every ``update_every``-th call up to ``stop_at`` each layer
    prunes ``k = round(f_t · nnz)`` of its active units by ``prune`` and grows ``k`` inactive
    ones by ``grow`` (grown weights start at 0, their optimizer state at 0).

    Args:
        model: a module holding ``SparseLinear`` layers (optionally DDP-wrapped).
        optimizer: the optimizer over the layers' ``values`` (its state is carried over);
            None to carry none.
        prune: one of ``criteria.PRUNE_CRITERIA``.
        grow: ``"random"``, ``"gradient"`` or ``"momentum"``.
        update_every: ``ΔT``, steps between updates.
        drop_fraction: ``α`` in ``[0, 1)``.
        schedule: ``"constant"`` or ``"cosine"`` (needs ``stop_at`` or ``total_steps``).
        stop_at: last step that may update; later the mask is frozen. None: never frozen.
        total_steps: ``T_end`` of the cosine schedule when ``stop_at`` is None.
        exclude: names (as in ``model.named_modules()``) of sparse layers kept static.
        gamma: MEST's ``γ``.
        momentum: ``β`` of momentum growth (default: the optimizer's momentum / beta1, else
            0.9); ``momentum_window``: steps it sums over.
        seed: seeds every random choice, as a function of ``(seed, step, layer)``.
        tile_elems: elements per dense-gradient tile (memory of gradient growth).
        update_threads: torch threads during an update (restored after). None (default):
            torch's current count (quiet Zen 5, 2 threads: the update is 7.6-7.9 % of the
            average step at update_every=100, against 10.5-11.5 % with 1 thread). 1 helps on a
            heavily loaded machine, where the O(nnz) sorts and top-k lose to OpenMP overhead.
        process_group: the ``torch.distributed`` group (None: the default one if initialised).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        prune: str = "magnitude",
        grow: str = "gradient",
        update_every: int = 100,
        drop_fraction: float = 0.3,
        schedule: str = "cosine",
        stop_at: int | None = None,
        total_steps: int | None = None,
        exclude: Iterable[str] = (),
        gamma: float = 1.0,
        momentum: float | None = None,
        momentum_window: int = 8,
        seed: int = 0,
        tile_elems: int = 1 << 18,
        update_threads: int | None = None,
        process_group: object | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer: expected a torch.optim.Optimizer or None, got "
                f"{type(optimizer).__name__}"
            )
        excluded = set(exclude) if not isinstance(exclude, str) else {exclude}
        inner = _unwrap(model)
        names = {n for n, mod in inner.named_modules() if isinstance(mod, SparseLinear)}
        unknown = excluded - names
        if unknown:
            raise ValueError(f"exclude: not sparse layers of the model: {sorted(unknown)}")
        self.layers: list[tuple[str, SparseLinear]] = [
            (n, mod) for n, mod in inner.named_modules()
            if isinstance(mod, SparseLinear) and n not in excluded
        ]
        if not self.layers:
            raise ValueError(
                "model: holds no SparseLinear layers to update (sparsify it first with "
                "so.sparsify(model, layout, density=...))"
            )
        self.prune = check_criterion(prune)
        self.grow = check_growth(grow)
        self.schedule = DropSchedule(drop_fraction, update_every, schedule, stop_at, total_steps)
        if isinstance(tile_elems, bool) or not isinstance(tile_elems, int) or tile_elems < 1:
            raise ValueError(f"tile_elems: expected a positive int, got {tile_elems!r}")
        if isinstance(momentum_window, bool) or not isinstance(momentum_window, int) or (
            momentum_window < 1
        ):
            raise ValueError(f"momentum_window: expected a positive int, got {momentum_window!r}")
        if update_threads is not None and (
            isinstance(update_threads, bool) or not isinstance(update_threads, int)
            or update_threads < 1
        ):
            raise ValueError(f"update_threads: expected a positive int or None, got "
                             f"{update_threads!r}")
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or gamma < 0:
            raise ValueError(f"gamma: expected a number >= 0, got {gamma!r}")
        self.optimizer = optimizer
        self.gamma = float(gamma)
        self.momentum = float(momentum) if momentum is not None else self._optimizer_beta()
        self.seed = int(seed)
        self.tile_elems = tile_elems
        self.update_threads = update_threads
        self.process_group = process_group
        self.window = {"random": 0, "gradient": 1, "momentum": momentum_window}[self.grow]
        self._step = 0
        self._captures: list[list[list[Any]]] = [[] for _ in self.layers]
        self._stats: list[dict[str, Any]] = [self._empty_stats(mod) for _, mod in self.layers]
        self._handles = [
            mod.register_forward_hook(self._make_hook(i)) for i, (_, mod) in enumerate(self.layers)
        ]

    # --- set-up ----------------------------------------------------------------------------
    def _optimizer_beta(self) -> float:
        if self.optimizer is not None:
            for group in self.optimizer.param_groups:
                if group.get("momentum"):
                    return float(group["momentum"])
                if "betas" in group:
                    return float(group["betas"][0])
        return 0.9

    @staticmethod
    def _empty_stats(mod: SparseLinear) -> dict[str, Any]:
        return {
            "layout": mod.layout, "shape": (mod.out_features, mod.in_features),
            "nnz": int(mod.values.numel()), "units": 0, "density": 0.0, "updates": 0, "pruned": 0,
            "grown": 0, "mask_change": 0.0, "total_swapped": 0, "time_s": 0.0,
            "total_time_s": 0.0,
        }

    def _make_hook(self, index: int):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            if not self.window or not module.training or not isinstance(output, torch.Tensor):
                return
            if not output.requires_grad:
                return
            upcoming = self._step + 1
            t_update = self.schedule.next_update(upcoming)
            if t_update is None or t_update - upcoming >= self.window:
                return
            entry: list[Any] = [upcoming, inputs[0].detach().reshape(-1, module.in_features),
                                None]
            self._captures[index].append(entry)

            def grad_hook(g: torch.Tensor) -> None:
                entry[2] = g.detach().reshape(-1, module.out_features)

            output.register_hook(grad_hook)

        return hook

    def remove(self) -> None:
        """Detach the forward hooks (the model keeps its current structure)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    # --- the update ------------------------------------------------------------------------
    def step(self) -> bool:
        """Advance one training step; update the structure when due. True if it updated."""
        self._step += 1
        t = self._step
        if not self.schedule.is_update(t):
            self._drop_stale(t)
            return False
        group = active_group(self.process_group)
        threads = torch.get_num_threads()
        if self.update_threads is not None:
            torch.set_num_threads(self.update_threads)
        try:
            for i in range(len(self.layers)):
                self._update_layer(i, t, group)
        finally:
            torch.set_num_threads(threads)
        for c in self._captures:
            c.clear()
        if group is not None:
            tensors = [b for _, mod in self.layers for b in (getattr(mod, n) for n in
                                                              mod.structure_names)]
            if not check_same_structure(tensors, group):
                raise RuntimeError(f"dst: ranks disagree on the sparse structure after step {t}")
        return True

    def _drop_stale(self, t: int) -> None:
        """Forget captures that no coming update will read."""
        nxt = self.schedule.next_update(t + 1)
        for c in self._captures:
            if c and (nxt is None or c[0][0] <= nxt - self.window):
                c[:] = [e for e in c if nxt is not None and e[0] > nxt - self.window]

    def _generator(self, t: int, layer: int, salt: int) -> torch.Generator:
        g = torch.Generator()
        g.manual_seed((self.seed * 1_000_003 + t * 10_007 + layer * 101 + salt) % (1 << 62))
        return g

    def _pairs(self, index: int, t: int) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
        name = self.layers[index][0]
        pairs = []
        for tag, x, dy in self._captures[index]:
            if dy is None or tag <= t - self.window or tag > t:
                continue
            pairs.append((x, dy, self.momentum ** (t - tag) if self.grow == "momentum" else 1.0))
        if not pairs:
            raise ValueError(
                f"grow: {self.grow!r} growth needs a forward and backward pass of layer "
                f"{name!r} (in training mode) at the update step before dst.step() (step {t})"
            )
        return pairs

    def _row_step(self, mod: SparseLinear, r: int) -> int:
        rows = max(1, self.tile_elems // max(mod.in_features, 1))
        return max(r, rows // r * r)

    def _tiles(self, index: int, t: int, r: int, group: object | None):
        mod = self.layers[index][1]
        return grad_row_tiles(self._pairs(index, t), mod.out_features, self._row_step(mod, r),
                              group)

    @torch.no_grad()
    def _update_layer(self, index: int, t: int, group: object | None) -> None:
        name, mod = self.layers[index]
        start = time.perf_counter()
        view = view_of(mod)
        values = mod.values
        grad = values.grad
        if self.prune in NEEDS_GRAD and grad is None:
            raise ValueError(
                f"prune: criterion {self.prune!r} needs layer {name!r}'s gradient; call "
                f"backward() before dst.step() (step {t})"
            )
        k = min(self.schedule.count(t, view.units), view.capacity())
        if self.window and k > 0:
            self._pairs(index, t)  # raise early, before any change, if no gradient was kept
        gen_p = self._generator(t, index, _PRUNE_SALT)
        gen_g = self._generator(t, index, _GROW_SALT)
        src = None
        if k > 0 and isinstance(view, GridLayer):
            ids = view.active_ids()
            pruned = select_prune(self.prune, values, grad, view.units, k, gamma=self.gamma,
                                  generator=gen_p)
            active_sorted = ids
            if ids.numel() > 1 and not bool((ids.diff() > 0).all()):
                active_sorted = torch.sort(ids).values
            if self.grow == "random":
                grown = random_inactive_grid(active_sorted.cpu(), view.total, k, gen_g)
            else:
                grown = topk_inactive_grid(self._tiles(index, t, view.blocksize[0], group),
                                           active_sorted, view.cols_u, view.blocksize, k)
            src = view.rewrite(ids, pruned, grown)
        elif k > 0 and isinstance(view, NMLayer):
            if self.prune == "set":
                rank_key = values.detach().double().abs().reshape(-1)
            else:
                rank_key = prune_scores(self.prune, values, grad, view.units, self.gamma, gen_p)
            eligible = view.eligible(rank_key)
            pruned = select_prune(
                self.prune, values, grad, view.units, k, eligible=eligible, gamma=self.gamma,
                generator=None, score=None if self.prune == "set" else rank_key,
            )
            mask = view.pruned_counts(pruned)
            keep = int(mask.sum(-1).max()) if mask.numel() else 0
            pos = view.positions()
            tiles = None if self.grow == "random" else self._tiles(index, t, 1, group)
            ranked = nm_ranked_inactive(tiles, pos, view.num_cols, view.m, keep, gen_g)
            src = view.rewrite(pos, mask, ranked)
        if src is not None:
            remap_inplace(values.data, src)
            if grad is not None:
                remap_inplace(grad, src)
            remap_optimizer_state(self.optimizer, values, src)
        elapsed = time.perf_counter() - start
        s = self._stats[index]
        swapped = int((src < 0).sum()) if src is not None else 0
        s.update(
            nnz=int(values.numel()), units=view.units, updates=s["updates"] + 1, pruned=swapped,
            grown=swapped,
            mask_change=swapped / max(view.units, 1), total_swapped=s["total_swapped"] + swapped,
            time_s=elapsed, total_time_s=s["total_time_s"] + elapsed,
        )

    # --- reporting and checkpoints ---------------------------------------------------------
    @property
    def step_count(self) -> int:
        """Completed ``step()`` calls."""
        return self._step

    def drop_fraction(self, step: int | None = None) -> float:
        """The scheduled drop fraction at ``step`` (default: the next step)."""
        return self.schedule.fraction(self._step + 1 if step is None else step)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per layer: layout, shape, nnz, density, updates, pruned/grown and ``mask_change``
        (fraction of units swapped) at the last update, totals, and time (s) per update."""
        out = {}
        for (name, mod), s in zip(self.layers, self._stats, strict=True):
            d = dict(s)
            total = mod.out_features * mod.in_features
            d["density"] = mod.sparse_weight().nnz / total if total else 0.0
            out[name] = d
        return out

    def state_dict(self) -> dict[str, Any]:
        """The step count, configuration, statistics and kept activations (for momentum growth
        across a checkpoint). With the model's and optimizer's, a bit-exact resume."""
        return {
            "step": self._step,
            "config": self._config(),
            "stats": [dict(s) for s in self._stats],
            "captures": [[[e[0], e[1].clone(), None if e[2] is None else e[2].clone()]
                          for e in c] for c in self._captures],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()``; ValueError if it came from another configuration."""
        if not isinstance(state, dict) or "step" not in state:
            raise TypeError("state: expected a dict from DynamicSparsity.state_dict()")
        if state["config"] != self._config():
            raise ValueError(
                f"state: saved for configuration {state['config']}, this one is {self._config()}"
            )
        self._step = int(state["step"])
        self._stats = [dict(s) for s in state["stats"]]
        self._captures = [[[e[0], e[1], e[2]] for e in c] for c in state["captures"]]

    def _config(self) -> dict[str, Any]:
        s = self.schedule
        return {
            "prune": self.prune, "grow": self.grow, "update_every": s.update_every,
            "drop_fraction": float(s.drop_fraction), "schedule": s.schedule,
            "stop_at": s.stop_at, "total_steps": s.total_steps, "seed": self.seed,
            "layers": [n for n, _ in self.layers],
            "gamma": self.gamma, "momentum": None if math.isnan(self.momentum) else self.momentum,
        }

    def __repr__(self) -> str:
        return (
            f"DynamicSparsity(prune={self.prune!r}, grow={self.grow!r}, "
            f"layers={len(self.layers)}, step={self._step}, {self.schedule})"
        )
