"""The host a benchmark runs on, named in every report: CPU vendor, model, SIMD level."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent / "out"


def _cpuinfo(key: str) -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, else what ``platform`` says."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_vendor() -> str:
    """``GenuineIntel``, ``AuthenticAMD``, ... (empty if unknown)."""
    return _cpuinfo("vendor_id")


def cpu_family_model() -> str:
    """``family F model M`` from /proc/cpuinfo (names the generation where the model name does
    not, e.g. a VM's "Intel Xeon Processor")."""
    fam, mod = _cpuinfo("cpu family"), _cpuinfo("model\t")
    return f"family {fam} model {mod}" if fam and mod else ""


def cpu_features() -> list[str]:
    """The SIMD and matrix features that matter to the kernels (AVX2 .. AMX) this CPU has."""
    flags = set(_cpuinfo("flags").split())
    wanted = ["avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx_vnni",
              "amx_bf16", "amx_int8", "amx_tile"]
    return [f for f in wanted if f in flags]


def simd_level() -> str:
    """The sparse_ops SIMD level in use (``SPARSE_OPS_SIMD`` can lower it)."""
    from sparse_ops import _C

    return _C.simd_level()


def torch_level() -> str:
    """torch's own kernel level, ATen's CPU capability (``avx2``, ``avx512``, ...):
    ``ATEN_CPU_CAPABILITY`` lowers it, as ``SPARSE_OPS_SIMD`` lowers ours."""
    return torch.backends.cpu.get_cpu_capability().lower()


# What lowers torch's kernels below the CPU's: ATen's DispatchStub kernels (the int8pack_mm
# anchor among them), oneDNN (bf16 matmul), MKL (fp32 matmul). With all three set to AVX2 and
# SPARSE_OPS_SIMD=avx2, an AVX-512 machine runs what an AVX2-only CPU (AMD Zen 3) would.
TORCH_ISA_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def torch_isa_env() -> str:
    """The variables of ``TORCH_ISA_ENV`` that are set, ``NAME=value`` (empty: none)."""
    return " ".join(f"{k}={os.environ[k]}" for k in TORCH_ISA_ENV if os.environ.get(k))


def int8_dot() -> str:
    """The dot product the W8A8 kernels run on (``sparse_ops.w8a8.dot_engine``)."""
    from sparse_ops import w8a8

    return w8a8.dot_engine()


def header() -> str:
    """One line naming the machine: vendor, model, features, SIMD level, threads, torch and
    torch's own kernel level (with the variables that lowered it)."""
    fm = cpu_family_model()
    env = torch_isa_env()
    return (f"{cpu_vendor()} {cpu_model()}" + (f" ({fm})" if fm else "")
            + f", features {' '.join(cpu_features()) or 'none'}; sparse_ops SIMD level "
            f"{simd_level()} (int8 dot {int8_dot()}); {torch.get_num_threads()} threads; "
            f"torch {torch.__version__} at {torch_level()}" + (f" ({env})" if env else ""))


def slug() -> str:
    """A file-name-safe name of the CPU and the SIMD level, e.g. ``amd-epyc-7b13-avx2``; a
    model name without a model number (a VM's "Intel Xeon Processor") gains the family and
    model, ``intel-xeon-processor-f6m207-avx512``, so that two generations do not share a
    folder. Where torch's kernels were lowered too (``TORCH_ISA_ENV``), ``-torch-<level>``
    follows: ``...-avx2-torch-avx2`` is a whole AVX2 machine, ``...-avx2`` ours alone."""
    name = re.sub(r"\(r\)|\(tm\)|cpu|@.*$", "", cpu_model().lower())
    name = re.sub(r"[^a-z0-9]+", "-", name).strip("-") or platform.machine()
    fam, mod = _cpuinfo("cpu family"), _cpuinfo("model\t")
    if not re.search(r"\d", name) and fam and mod:
        name += f"-f{fam}m{mod}"
    return f"{name}-{simd_level()}" + (f"-torch-{torch_level()}" if torch_isa_env() else "")


def out_dir(base: Path = OUT) -> Path:
    """``bench/out/<cpu>-<simd>/``: where a benchmark writes its json and markdown."""
    d = base / slug()
    d.mkdir(parents=True, exist_ok=True)
    return d
