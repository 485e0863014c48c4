"""GPU-only checks the interpreter cannot make: compiled Triton kernels in fp16/bf16 on large
shapes and torch.compile of a sparsified model on CUDA. Skipped without a GPU."""

from __future__ import annotations

import os

import pytest
import torch

import sparse_ops as so
from tests.helpers import rel_err

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1",
    reason="needs a CUDA GPU with compiled Triton (TRITON_INTERPRET unset)",
)

LAYOUTS = [("csr", {}, 0.05), ("bsr", {"blocksize": (32, 32)}, 0.1),
           ("bsr", {"blocksize": (64, 64)}, 0.1), ("nm", {"n": 2, "m": 4}, None),
           ("nm", {"n": 1, "m": 4}, None)]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("layout,kw,density", LAYOUTS)
@pytest.mark.parametrize("n_cols", [1, 16, 129, 2048])
def test_large_forward_backward(layout, kw, density, dtype, n_cols):
    g = torch.Generator(device="cuda").manual_seed(n_cols)
    w = torch.randn(4096, 4096, device="cuda", generator=g)
    p = so.prune(w, layout, density, **kw) if density else so.prune(w, layout, **kw)
    s = so.to_sparse(p.to(dtype), layout, **kw)
    x = torch.randn(4096, n_cols, device="cuda", generator=g).to(dtype).requires_grad_(True)
    values = s.values.clone().requires_grad_(True)
    y = so.matmul(s.with_values(values), x)
    ref = s.to_dense().double() @ x.detach().double()
    tol = 1e-5 if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32 else 2e-2
    assert rel_err(y, ref) < tol
    gy = torch.randn_like(y)
    y.backward(gy)
    assert rel_err(x.grad, s.to_dense().double().T @ gy.double()) < tol
    assert torch.isfinite(values.grad).all()


def test_compile_sparsified_model_on_cuda():
    torch._dynamo.reset()
    model = torch.nn.Sequential(torch.nn.Linear(1024, 2048), torch.nn.GELU(),
                                torch.nn.Linear(2048, 1024)).cuda().half()
    so.sparsify(model, "nm", n=2, m=4)
    x = torch.randn(64, 1024, device="cuda", dtype=torch.half)
    eager = model(x)
    compiled = torch.compile(model, fullgraph=True)
    out = compiled(x)
    assert rel_err(out, eager) < 1e-2
    out.float().square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
