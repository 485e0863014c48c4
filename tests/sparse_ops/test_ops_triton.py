"""The Triton custom ops: gradcheck, linear, torch.compile, empty products (opcheck, products
and gradients against the reference: the conformance suite, test_conformance.py).

Runs under the Triton interpreter (``TRITON_INTERPRET=1``, as ``make test`` sets) on CPU
tensors, or on CUDA when there is a GPU; skipped otherwise.
"""

from __future__ import annotations

import pytest
import torch

import sparse_ops as so
from sparse_ops.kernels.autotune import INTERPRET
from tests.helpers import random_sparse, rel_err

pytestmark = pytest.mark.skipif(
    not INTERPRET and not torch.cuda.is_available(),
    reason="Triton kernels need CUDA, or TRITON_INTERPRET=1 set before triton is imported",
)

DEVICE = "cpu" if INTERPRET or not torch.cuda.is_available() else "cuda"


def _ops():
    from sparse_ops.ops_triton import OPS

    return OPS


def _on_device(s, *tensors):
    """The sparse matrix and tensors on DEVICE (the helpers build them on the CPU)."""
    if DEVICE != "cpu":
        s = s.to(device=DEVICE)
        tensors = tuple(t.to(DEVICE) for t in tensors)
    return (s, *tensors)


@pytest.mark.parametrize(
    "layout,shape,kw",
    [("csr", (5, 7), {}), ("bsr", (4, 6), {"blocksize": (2, 3)}), ("nm", (2, 8), {"n": 2, "m": 4})],
)
def test_gradcheck_and_double_backward(layout, shape, kw):
    """Small sizes: each numerical derivative is a kernel launch in the interpreter."""
    s, _ = random_sparse(layout, shape, kw, dtype=torch.float64)
    x = torch.randn(shape[1], 2, dtype=torch.float64)
    s, x = _on_device(s, x)
    values = s.values.detach().clone().requires_grad_(True)
    x.requires_grad_(True)

    def f(v, xx):
        return so.matmul(s.with_values(v), xx, backend="triton")

    assert torch.autograd.gradcheck(f, (values, x))
    assert torch.autograd.gradgradcheck(f, (values, x))


def test_linear_matches_f_linear():
    s, dense = random_sparse("nm", (13, 24), {"n": 2, "m": 4})
    x = torch.randn(2, 5, 24)
    b = torch.randn(13)
    s, x, b, dense = _on_device(s, x, b, dense)
    y = so.linear(x, s, b, backend="triton")
    want = torch.nn.functional.linear(x.double(), dense, b.double())
    assert y.shape == (2, 5, 13)
    assert rel_err(y, want) < 1e-5


@pytest.mark.parametrize(
    "layout,kw",
    [("csr", {"density": 0.2}), ("bitmap", {"density": 0.5}),
     ("bsr", {"density": 0.5, "blocksize": (16, 16)}), ("nm", {"n": 2, "m": 4})],
)
def test_compile_fullgraph_forward_backward(layout, kw):
    """A sparsified MLP on the Triton backend under ``torch.compile(fullgraph=True)``."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    dense = torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.ReLU(), torch.nn.Linear(96, 32))
    model = so.sparsify(dense, layout, backend="triton", **kw).to(DEVICE)
    x = torch.randn(7, 64, device=DEVICE)
    eager_out = model(x)
    eager_out.square().sum().backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    out = compiled(x)
    out.square().sum().backward()
    assert rel_err(out, eager_out) < 1e-6
    for p, g in zip(model.parameters(), eager_grads, strict=True):
        assert rel_err(p.grad, g) < 1e-6


def test_empty_products():
    for layout, kw in [("csr", {}), ("bitmap", {}), ("bsr", {"blocksize": (2, 3)}),
                       ("nm", {"n": 2, "m": 4})]:
        s, x = _on_device(so.to_sparse(torch.zeros(4, 6), layout, **kw), torch.randn(6, 3))
        assert torch.equal(so.matmul(s, x, backend="triton").cpu(), torch.zeros(4, 3))
        assert so.matmul(s, x[:, :0], backend="triton").shape == (4, 0)
        (s0,) = _on_device(so.to_sparse(torch.zeros(0, 6), layout, **kw))
        assert so.matmul(s0, x, backend="triton").shape == (0, 3)


def test_bsr_block_shape_must_match_params():
    s, _ = random_sparse("bsr", (21, 35), {"blocksize": (3, 5)})
    x = torch.randn(35, 2)
    s, x = _on_device(s, x)
    with pytest.raises(ValueError, match="r, c"):
        _ops()["bsr"].spmm(*s.structure(), s.values, x, 5, 3)


_TRACE_SCRIPT = r"""
import torch
from functorch.compile import aot_function, make_boxed_func
from torch._subclasses.fake_tensor import FakeTensorMode

import sparse_ops.kernels.validation as validation
import sparse_ops.ops_triton as T

# Fake CPU tensors stand in for CUDA ones (a CPU-only torch cannot slice fake CUDA tensors);
# the kernels stay compiled-Triton JITFunctions, so wrap_triton records them in the graph.
validation.INTERPRET = True
graphs = []


def compiler(gm, example_inputs):
    graphs.append(gm.code)
    return make_boxed_func(gm.forward)


mode = FakeTensorMode()
with mode:
    i32, f16 = torch.int32, torch.float16
    crow, col = torch.zeros(9, dtype=i32), torch.zeros(20, dtype=torch.int16)
    vals, x, d = torch.zeros(20, dtype=f16), torch.zeros(16, 8, dtype=f16), torch.zeros(8, 8)
    d = d.to(f16)
    bcrow, bcol = torch.tensor([0, 1, 2], dtype=i32), torch.zeros(2, dtype=i32)
    bvals, bd = torch.zeros(2, 16, 16, dtype=f16), torch.zeros(32, 8, dtype=f16)
    meta, nvals = torch.zeros(8, 2, dtype=torch.uint8), torch.zeros(8, 8, dtype=f16)
    cases = [
        (T.csr_spmm, (crow, col, vals, x)),
        (lambda *a: T.csr_spmm_t(*a, 16), (crow, col, vals, d)),
        (T.csr_sddmm, (crow, col, d, x)),
        (lambda *a: T.bsr_spmm(*a, 16, 16), (bcrow, bcol, bvals, x)),
        (lambda *a: T.bsr_spmm_t(*a, 16, 16, 16), (bcrow, bcol, bvals, bd)),
        (lambda *a: T.bsr_sddmm(*a, 16, 16), (bcrow, bcol, bd, x)),
        (lambda *a: T.nm_spmm(*a, 2, 4), (meta, nvals, x)),
        (lambda *a: T.nm_spmm_t(*a, 16, 2, 4), (meta, nvals, d)),
        (lambda *a: T.nm_sddmm(*a, 2, 4), (meta, d, x)),
    ]
    for fn, args in cases:
        aot_function(fn, fw_compiler=compiler)(*args)
print(sum("triton_kernel_wrapper_functional(" in g for g in graphs), "of", len(graphs))
"""


def test_triton_op_traces_into_kernels():
    """Without the interpreter (the CUDA path), AOT tracing decomposes every op into torch ops
    and calls of its Triton kernels, which is what lets torch.compile see and fuse them."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "TRITON_INTERPRET": "0", "TORCH_LOGS": "-all"}
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _TRACE_SCRIPT], cwd=root, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-3:] == ["9", "of", "9"], done.stdout
