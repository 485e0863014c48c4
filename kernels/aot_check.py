"""Compile every kernel for a GPU that is not here: ``python -m sparse_ops.kernels.aot_check``.

The interpreter runs the kernels' arithmetic but never compiles them, so a kernel that passes
every interpreter test can still fail to compile (a layout `tl.reshape` cannot handle, a dot
shape the tensor cores refuse) or spill registers. This tool compiles each kernel with each of
its autotune configs for a CUDA target (default sm_90, Hopper) with Triton's bundled ``ptxas``,
needing no GPU and no driver, and reports registers, spills and shared memory per config.

It specialises arguments as a launch on contiguous, aligned tensors would (unit innermost
strides become constants; pointers and other strides are divisible by 16). Without that the
loads cannot be vectorised, the software pipeliner leaves them synchronous and every kernel,
the Triton tutorial's matmul included, looks register-bound.

Run it without ``TRITON_INTERPRET`` (the autotune lists are cut to one config under the
interpreter). Exits non-zero if any compile fails or, with ``--no-spills``, if any spills.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

_DTYPES = {"fp16": "fp16", "bf16": "bf16", "fp32": "fp32", "fp64": "fp64"}

# Tile parameters the launchers would pass: BSR blocks (R, C) and N:M patterns (n, m).
_BSR_BLOCKS = [(32, 32), (64, 64), (16, 16), (3, 5)]
_NM_PATTERNS = [(2, 4), (1, 4), (4, 8), (3, 7)]


def _kernels():
    from sparse_ops.kernels import bsr, csr, nm
    from sparse_ops.kernels.autotune import next_pow2

    def bsr_tiles(r, c, dt):
        br, bc = next_pow2(r), next_pow2(c)
        return {"BLOCK_R": br, "BLOCK_C": bc, "USE_DOT": br >= 16 and bc >= 16}

    def nm_tiles(n, m, dt):
        return {
            "N_KEEP": n,
            "M_GROUP": m,
            "M_PAD": next_pow2(m),
            "N_PAD": next_pow2(n),
            "BITS": nm.metadata_bits(m),
        }

    return {
        "csr_spmm": (csr._csr_spmm_kernel, [None], None),
        "csr_sddmm": (csr._csr_sddmm_kernel, [None], None),
        "bsr_spmm": (bsr._bsr_spmm_kernel, _BSR_BLOCKS, bsr_tiles),
        "bsr_sddmm": (bsr._bsr_sddmm_kernel, _BSR_BLOCKS, bsr_tiles),
        "nm_spmm": (nm._nm_spmm_kernel, _NM_PATTERNS, nm_tiles),
        "nm_spmm_t": (nm._nm_spmm_t_kernel, _NM_PATTERNS, nm_tiles),
        "nm_sddmm": (nm._nm_sddmm_kernel, _NM_PATTERNS, nm_tiles),
    }


# Innermost strides of row-major operands: 1 in a real launch, where Triton specialises an int
# argument equal to 1 into a constant (and so vectorises the loads along it).
_UNIT_STRIDES = {
    "stride_xn",
    "stride_yn",
    "stride_an",
    "stride_bn",
    "stride_dn",
    "stride_zn",
    "stride_vs",
    "stride_vc",
    "stride_mb",
    "stride_o",
    "stride_oc",
}


def _attrs(arg_names, constexprs):
    """Divisibility by 16 for pointers (torch allocations are aligned) and the other strides
    (true of the power-of-two shapes the benchmarks use): what a launch would specialise on."""
    return {
        (i,): [["tt.divisibility", 16]]
        for i, name in enumerate(arg_names)
        if name not in constexprs and (name.endswith("_ptr") or name.startswith("stride_"))
    }


def _signature(arg_names, dt, constexprs):
    sig = {}
    for name in arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name in ("crow_ptr", "order_ptr"):
            sig[name] = "*i32"
        elif name == "col_ptr":
            sig[name] = "*i16"
        elif name == "meta_ptr":
            sig[name] = "*u8"
        elif name.endswith("_ptr"):
            sig[name] = "*" + dt
        else:
            sig[name] = "i32"
    return sig


def _resources(cubin: bytes, cuobjdump: Path) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run(
            [str(cuobjdump), "--dump-resource-usage", f.name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    found = dict(re.findall(r"(REG|STACK|SHARED|LOCAL):(\d+)", text))
    return {k: int(v) for k, v in found.items()}


def _compile_one(job):
    kernel_name, tile, dt, config_index, arch = job
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    autotuner, _, tiles = _kernels()[kernel_name]
    config = autotuner.configs[config_index]
    fn = autotuner.fn
    constexprs = dict(config.kwargs)
    if tiles is not None:
        constexprs.update({k: v for k, v in tiles(*tile, dt).items() if k in fn.arg_names})
    for name, value in (
        ("FP64", dt == "fp64"),
        ("DOT_FP32", False),
        ("PRECISION", "tf32" if dt == "fp32" else "ieee"),
    ):
        if name in fn.arg_names:
            constexprs[name] = value
    constexprs.update({name: 1 for name in _UNIT_STRIDES if name in fn.arg_names})
    src = ASTSource(
        fn,
        _signature(fn.arg_names, dt, constexprs),
        constexprs=constexprs,
        attrs=_attrs(fn.arg_names, constexprs),
    )
    started = time.perf_counter()
    try:
        compiled = triton.compile(
            src,
            target=GPUTarget("cuda", arch, 32),
            options={"num_warps": config.num_warps, "num_stages": config.num_stages},
        )
    except Exception as e:  # report every failing combination, not only the first
        return job, config, None, f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    elapsed = time.perf_counter() - started
    cuobjdump = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    res = _resources(compiled.asm["cubin"], cuobjdump)
    res["smem"] = compiled.metadata.shared
    res["s"] = round(elapsed, 1)
    return job, config, res, None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 80, 90")
    parser.add_argument("--dtypes", default="fp16,bf16,fp32", help="of fp16,bf16,fp32,fp64")
    parser.add_argument("--kernels", default="", help="comma list (default: all)")
    parser.add_argument("--first-config", action="store_true", help="each kernel's first only")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-spills", action="store_true", help="fail on any register spill")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("unset TRITON_INTERPRET: it cuts each kernel to one config", file=sys.stderr)
        return 2

    kernels = _kernels()
    names = [k for k in args.kernels.split(",") if k] or list(kernels)
    jobs = []
    for name in names:
        autotuner, tile_list, _ = kernels[name]
        count = 1 if args.first_config else len(autotuner.configs)
        for tile in tile_list:
            for dt in args.dtypes.split(","):
                for i in range(count):
                    jobs.append((name, tile, _DTYPES[dt], i, args.arch))

    failures = spills = 0
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for (name, tile, dt, _, _), config, res, err in pool.map(_compile_one, jobs):
            label = f"{name:10s} {str(tile or ''):9s} {dt:5s} {config}"
            if err is not None:
                failures += 1
                print(f"FAIL {label}\n     {err}")
                continue
            spilled = res.get("LOCAL", 0) > 0 or res.get("STACK", 0) > 0
            spills += spilled
            print(f"{'SPILL' if spilled else 'ok   '} {label}  {res}")
    print(f"{len(jobs)} compiles for sm_{args.arch}: {failures} failed, {spills} spilled")
    return 1 if failures or (args.no_spills and spills) else 0


if __name__ == "__main__":
    sys.exit(main())
