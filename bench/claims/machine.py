"""The measuring machine: its name, and its peak FLOP rate and memory bandwidth, measured.

Peaks are measured at the start of every run, in the dtype the kernels use:

Each time is the fastest of a few medians (``best_seconds``): a peak is the best the machine
reaches, and the rounds ride out bursts of other work on a shared machine.

- peak FLOP/s: ``2 * s**3 / t`` for a square ``torch.mm`` of side ``s``;
- copy bandwidth: ``2 * bytes / t`` for ``dst.copy_(src)`` (a read and a write of each byte,
  STREAM's convention), once for a buffer the size of the dense weight (the working set of the
  batch-1 products, which a large last-level cache may hold) and once for a buffer far larger
  than any cache (DRAM);
- read bandwidth: ``bytes / t`` for ``src.sum()`` at the weight's size: the rate at which a
  batch-1 product can stream its weight, which the simulator preset uses (a copy's rate
  overstates a read-only stream's on CPUs, whose writes cost a read-for-ownership too).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from bench.host import cpu_model
from bench.timing import median_seconds

try:
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Machine:
    """A measured machine. FLOP/s and bytes/s; cache sizes in bytes (0 when unknown)."""

    device: str
    name: str
    cores: int
    threads: int
    torch_version: str
    dtype: str
    peak_flops: float
    bandwidth_read: float
    bandwidth_working_set: float
    bandwidth_dram: float
    working_set_bytes: int
    l2_bytes: int
    llc_bytes: int
    simd: str
    load_average: float

    def describe(self) -> str:
        """One paragraph for the report."""
        caches = ""
        if self.l2_bytes or self.llc_bytes:
            caches = f", L2 {self.l2_bytes / 2**20:.0f} MiB, last-level cache " \
                     f"{self.llc_bytes / 2**20:.0f} MiB"
        return (
            f"{self.name} ({self.device}, {self.cores} logical CPUs, {self.threads} torch "
            f"threads{caches}; sparse_ops SIMD: {self.simd}), torch {self.torch_version}. "
            f"Measured {self.dtype}: peak {self.peak_flops / 1e9:.0f} GFLOP/s (torch.mm); at the "
            f"weight's {self.working_set_bytes / 2**20:.0f} MiB working set read bandwidth "
            f"{self.bandwidth_read / 1e9:.1f} GB/s (sum), copy bandwidth "
            f"{self.bandwidth_working_set / 1e9:.1f} GB/s (read + write); copy bandwidth at "
            f"DRAM size {self.bandwidth_dram / 1e9:.1f} GB/s. Load average at start: "
            f"{self.load_average:.2f}."
        )

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict."""
        return asdict(self)


def cache_bytes(level: int) -> int:
    """Total bytes of the CPU caches of ``level`` (distinct instances summed), 0 if unknown."""
    seen: dict[str, int] = {}
    root = Path("/sys/devices/system/cpu")
    for idx in root.glob("cpu[0-9]*/cache/index[0-9]*"):
        try:
            if int((idx / "level").read_text()) != level:
                continue
            if (idx / "type").read_text().strip() == "Instruction":
                continue
            size = (idx / "size").read_text().strip()
            shared = (idx / "shared_cpu_list").read_text().strip()
        except (OSError, ValueError):
            continue
        mult = {"K": 2**10, "M": 2**20, "G": 2**30}.get(size[-1], 1)
        seen[shared] = int(size.rstrip("KMG")) * mult
    return sum(seen.values())


def simd_level() -> str:
    """The SIMD level the C++ extension picked, if it says; else what the CPU flags allow."""
    try:
        from sparse_ops import _C  # type: ignore[attr-defined]
        for name in ("simd_level", "simd", "isa"):
            fn = getattr(_C, name, None)
            if callable(fn):
                return str(fn())
    except ImportError:
        pass
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    return "avx512 (CPU flags)" if "avx512f" in flags else \
        "avx2 (CPU flags)" if "avx2" in flags else "scalar (CPU flags)"


def best_seconds(fn: Callable[[], object], device: str, repeat: int, rounds: int = 3,
                 min_time: float = 0.02, max_rounds: int = 8) -> float:
    """The fastest of ``rounds`` medians of ``fn``: a peak is the best the machine reaches.

    While every round so far was disturbed (other processes took more than 10 % of the CPU
    during it), more rounds follow, up to ``max_rounds``.
    """
    best, quiet = math.inf, False
    for i in range(max_rounds):
        if i >= rounds and quiet:
            break
        others0, t0 = others_cpu_seconds(), time.perf_counter()
        t = median_seconds(fn, device, repeat, min_time=min_time)
        share = (others_cpu_seconds() - others0) / ((time.perf_counter() - t0) *
                                                     (os.cpu_count() or 1))
        quiet = quiet or share <= 0.1
        best = min(best, t)
    return best


def copy_bandwidth(nbytes: int, device: str, repeat: int) -> float:
    """Bytes/s of ``dst.copy_(src)`` for ``nbytes``-byte buffers, read + write counted."""
    numel = max(1, nbytes // 4)
    src = torch.ones(numel, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    t = best_seconds(lambda: dst.copy_(src), device, repeat)
    return 2 * numel * 4 / t


def read_bandwidth(nbytes: int, device: str, repeat: int) -> float:
    """Bytes/s of ``src.sum()`` over an ``nbytes``-byte fp32 buffer (reads only)."""
    src = torch.ones(max(1, nbytes // 4), dtype=torch.float32, device=device)
    t = best_seconds(lambda: src.sum(), device, repeat)
    return src.numel() * 4 / t


def others_cpu_seconds() -> float:
    """CPU seconds the whole machine has been busy (Linux ``/proc/stat``) less those of this
    process and its children so far. Its change over a run, divided by wall time and cores,
    is the share of the machine other work took while we timed (0 where unknown)."""
    if resource is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
    except (OSError, ValueError, IndexError):
        return 0.0
    busy = (user + nice + system + irq + softirq) / tick
    own = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        own += r.ru_utime + r.ru_stime
    return busy - own


def load_average() -> float:
    """The 1-minute load average (other work on the machine skews timings), 0 if unknown."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return 0.0


def peak_flops(side: int, device: str, dtype: torch.dtype, repeat: int) -> float:
    """FLOP/s of a square ``torch.mm`` of side ``side`` in ``dtype``."""
    a = torch.randn(side, side, device=device).to(dtype)
    b = torch.randn(side, side, device=device).to(dtype)
    t = best_seconds(lambda: torch.mm(a, b), device, repeat)
    return 2 * side**3 / t


def measure(device: str, dtype: torch.dtype, peak_side: int, working_set_bytes: int,
            dram_copy_mib: int, repeat: int = 5) -> Machine:
    """Describe and measure the machine the kernels run on."""
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        name, cores, l2, llc = props.name, props.multi_processor_count, props.L2_cache_size, 0
        simd = "n/a (GPU)"
    else:
        name, cores = cpu_model(), os.cpu_count() or 1
        l2, llc, simd = cache_bytes(2), cache_bytes(3), simd_level()
    dram = max(dram_copy_mib * 2**20, 2 * max(llc, l2))
    load = load_average()
    return Machine(
        device=device, name=name, cores=cores, threads=torch.get_num_threads(),
        torch_version=torch.__version__, dtype=str(dtype).replace("torch.", ""),
        peak_flops=peak_flops(peak_side, device, dtype, repeat),
        bandwidth_read=read_bandwidth(working_set_bytes, device, repeat),
        bandwidth_working_set=copy_bandwidth(working_set_bytes, device, repeat),
        bandwidth_dram=copy_bandwidth(dram, device, 3),
        working_set_bytes=working_set_bytes, l2_bytes=l2, llc_bytes=llc, simd=simd,
        load_average=load,
    )
