"""Training step time and memory: sparse DST vs ``nn.Linear`` dense vs masked-dense DST.

MLP 3072-1024-512-10, batch 128, fp32, full steps (forward, backward, SGD momentum, DST update
every 100 steps). Each mode runs in its own subprocess (``python -m bench.dst.speed MODE``) so
that its memory is its own: training memory is the peak RSS sampled after each backward and
optimizer step, less the RSS before the model was built.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import torch
from torch import nn
from torch.nn import functional as F

SIZES = (3072, 1024, 512, 10)
BATCH = 128


class MaskedLinear(nn.Module):
    """The anchors' way: a dense weight times a dense 0/1 mask, dense gradients."""

    def __init__(self, lin: nn.Linear, density: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(lin.weight.detach().clone())
        self.bias = nn.Parameter(lin.bias.detach().clone())
        k = round(density * self.weight.numel())
        mask = torch.zeros(self.weight.numel())
        mask[self.weight.detach().abs().flatten().topk(k).indices] = 1
        self.register_buffer("mask", mask.view_as(self.weight))
        with torch.no_grad():
            self.weight.mul_(self.mask)
        self.keep_grad = False
        self.w_eff: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.mask
        if self.keep_grad:
            w.retain_grad()
            self.w_eff = w
        return F.linear(x, w, self.bias)


class MaskedDST:
    """RigL on masked-dense layers: magnitude prune, dense-gradient growth, every ΔT steps."""

    def __init__(self, layers, opt, update_every=100, drop_fraction=0.3):
        self.layers, self.opt, self.every, self.frac, self.t = layers, opt, update_every, \
            drop_fraction, 0

    def before_forward(self):
        for lay in self.layers:
            lay.keep_grad = (self.t + 1) % self.every == 0

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        if self.t % self.every:
            return
        for lay in self.layers:
            mask = lay.mask.bool()
            k = round(self.frac * int(mask.sum()))
            score = lay.weight.abs().masked_fill(~mask, float("inf")).flatten()
            drop = score.topk(k, largest=False).indices
            grow_s = lay.w_eff.grad.abs().masked_fill(mask, -float("inf")).flatten()
            grow = grow_s.topk(k).indices
            flat = lay.mask.view(-1)
            flat[drop] = 0
            flat[grow] = 1
            lay.weight.view(-1)[grow] = 0
            lay.weight.mul_(lay.mask)
            buf = self.opt.state[lay.weight].get("momentum_buffer")
            if buf is not None:
                buf.view(-1)[grow] = 0
                buf.mul_(lay.mask)
            lay.keep_grad, lay.w_eff = False, None


def _mlp(sizes: tuple[int, ...] = SIZES) -> nn.Sequential:
    mods: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        mods += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*mods[:-1])


def _trim() -> None:
    """Hand freed heap memory back to the OS (glibc), so RSS shows live memory."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def run_mode(mode: str, density: float, steps: int, warmup: int = 10, threads: int = 2,
             sizes: tuple[int, ...] = SIZES, batch: int = BATCH, every: int = 100) -> dict:
    """One mode in this process: ``dense``, ``masked`` or ``sparse`` (CSR + so.dst).

    A first call at 1/8 size (same code paths) warms the libraries so that the RSS growth
    measured here is the training's tensors, not code pages and thread pools; freed heap is
    trimmed before the baseline and after building the model (building a sparse model prunes
    a dense one first: that transient is not training memory)."""
    import psutil

    import sparse_ops as so

    if sizes == SIZES:
        small = tuple(max(10, s // 8) for s in SIZES[:-1]) + (SIZES[-1],)
        run_mode(mode, density, 6, 2, threads, small, batch, every=3)
    torch.set_num_threads(threads)
    proc = psutil.Process()
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(batch, sizes[0], generator=g) for _ in range(4)]
    ys = [torch.randint(0, sizes[-1], (batch,), generator=g) for _ in range(4)]
    _trim()
    rss0 = proc.memory_info().rss
    torch.manual_seed(0)
    model = _mlp(sizes)
    dst = masked = None
    if mode == "sparse":
        model = so.sparsify(model, "csr", density=density)
    elif mode == "masked":
        layers = []
        for i, m in enumerate(model):
            if isinstance(m, nn.Linear):
                model[i] = MaskedLinear(m, density)
                layers.append(model[i])
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    if mode == "sparse":
        dst = so.dst.DynamicSparsity(model, opt, prune="magnitude", grow="gradient",
                                     update_every=every, drop_fraction=0.3, schedule="constant")
    elif mode == "masked":
        masked = MaskedDST(layers, opt, update_every=every)
    _trim()
    peak, times, update, before_update = rss0, [], 0.0, None
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        if masked is not None:
            masked.before_forward()
        loss = F.cross_entropy(model(xs[i % 4]), ys[i % 4])
        loss.backward()
        peak = max(peak, proc.memory_info().rss)
        opt.step()
        if (i + 1) % every == 0 and before_update is None:
            before_update = peak
        u0 = time.perf_counter()
        if dst is not None:
            dst.step()
        if masked is not None:
            masked.step()
        u1 = time.perf_counter()
        opt.zero_grad()
        peak = max(peak, proc.memory_info().rss)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            if (i + 1) % every == 0:
                update += u1 - u0
    total = sum(times)
    return {"mode": mode, "density": density, "steps": steps,
            "step_ms": 1e3 * total / len(times), "update_share": update / total,
            "train_mb": (peak - rss0) / 2**20,
            "steps_only_mb": ((before_update or peak) - rss0) / 2**20}


def big_update() -> dict:
    """One training step and one update of an 8192 x 8192 CSR layer at density 0.01."""
    import psutil
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    import sparse_ops as so
    from sparse_ops.dst.growth import random_inactive_grid

    class MaxAlloc(TorchDispatchMode):
        largest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    self.largest = max(self.largest, t.numel())
            return out

    torch.set_num_threads(2)
    size = 8192
    nnz = round(0.01 * size * size)
    g = torch.Generator().manual_seed(0)
    ids = random_inactive_grid(torch.zeros(0, dtype=torch.long), size * size, nnz, g)
    crow = torch.zeros(size + 1, dtype=torch.int32)
    crow[1:] = torch.cumsum(torch.bincount(ids // size, minlength=size), 0)
    layer = so.SparseLinear(so.CSRMatrix(crow, (ids % size).to(torch.int16),
                                         torch.randn(nnz, generator=g) * 0.01, (size, size)))
    opt = torch.optim.SGD(layer.parameters(), lr=0.01, momentum=0.9)
    dst = so.dst.DynamicSparsity(layer, opt, update_every=1, schedule="constant")
    layer(torch.randn(BATCH, size, generator=g)).square().mean().backward()
    opt.step()
    rss0 = psutil.Process().memory_info().rss
    t0 = time.perf_counter()
    with MaxAlloc() as probe:
        dst.step()
    dt = time.perf_counter() - t0
    rss1 = psutil.Process().memory_info().rss
    return {"update_s": dt, "largest": probe.largest, "dense": size * size,
            "rss_mb": (rss1 - rss0) / 2**20}


def run_all(steps: int = 300, threads: int = 2, log=print) -> dict:
    modes = {}
    for name, mode, d in (("dense", "dense", 1.0), ("masked_0.05", "masked", 0.05),
                          ("masked_0.1", "masked", 0.1), ("sparse_0.05", "sparse", 0.05),
                          ("sparse_0.1", "sparse", 0.1)):
        out = subprocess.run([sys.executable, "-m", "bench.dst.speed", mode, str(d), str(steps),
                              str(threads)],
                             capture_output=True, text=True, check=True,
                             cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
        modes[name] = json.loads(out.stdout.strip().splitlines()[-1])
        log(f"  {name}: {modes[name]['step_ms']:.2f} ms/step, "
            f"{modes[name]['train_mb']:.1f} MB")
    out = subprocess.run([sys.executable, "-m", "bench.dst.speed", "big"], capture_output=True,
                         text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    big = json.loads(out.stdout.strip().splitlines()[-1])
    dense = modes["dense"]
    sp5, sp10 = modes["sparse_0.05"], modes["sparse_0.1"]
    targets = {
        "d=0.05 ≥ 2× dense": dense["step_ms"] / sp5["step_ms"] >= 2,
        "d=0.05 ≥ 2× masked dense": modes["masked_0.05"]["step_ms"] / sp5["step_ms"] >= 2,
        "d=0.1 ≥ 1.5× dense": dense["step_ms"] / sp10["step_ms"] >= 1.5,
        "d=0.1 ≥ 1.5× masked dense": modes["masked_0.1"]["step_ms"] / sp10["step_ms"] >= 1.5,
        "update ≤ 5 % of the step (ΔT=100)": max(sp5["update_share"], sp10["update_share"])
        <= 0.05,
        "memory d=0.05 ≤ 0.3× dense": sp5["train_mb"] <= 0.3 * dense["train_mb"],
        "8192² update allocates < 1/16 of dense": big["largest"] < big["dense"] // 16,
    }
    note = (f"{steps} timed steps per mode after 10 warm-up, {threads} threads, each mode in "
            f"its own "
            f"process, run one after another on a machine shared with other jobs (the "
            f"timings carry that noise). Update share: DST update time / total step time.")
    return {"modes": modes, "big": big, "targets": targets, "note": note, "threads": threads,
            "load_average": os.getloadavg()}


if __name__ == "__main__":
    if sys.argv[1] == "big":
        print(json.dumps(big_update()))
    else:
        print(json.dumps(run_mode(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]),
                                  threads=int(sys.argv[4]))))
