"""The conformance checks every layout and backend must pass, in the spirit of PyTorch's
OpInfo: one description of the products, run for every (layout, backend, product, dtype).

``check_products`` runs a backend's four products (``spmm``, ``spmm_t``, ``sddmm``,
``linear``, the last through ``so.linear``) on a random matrix of the layout against the
reference backend in float64; ``check_opcheck`` puts a custom op through
``torch.library.opcheck`` (schema, fakes, autograd registration); ``check_gradients`` compares
the gradients of ``so.matmul`` and ``so.linear`` with the reference backend's. The suite
(``test_conformance.py``) runs them over every registered layout; a layout defined outside the
package (``test_toy_layout.py``) runs the same functions.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

import sparse_ops as so
from sparse_ops.registry import backend_ops, get_layout
from tests.helpers import rel_err

PRODUCTS = ("spmm", "spmm_t", "sddmm", "linear")
TOL = {torch.float32: 1e-5, torch.float64: 1e-12, torch.float16: 5e-3, torch.bfloat16: 3e-2}


def make_matrix(layout: str, shape: tuple[int, int], options: dict, dtype: torch.dtype,
                g: torch.Generator, device: str = "cpu") -> so.SparseMatrix:
    """A pruned random matrix of ``layout`` (odd shapes: not multiples of blocks or groups)."""
    w = torch.randn(shape, generator=g, dtype=torch.float64)
    entry = get_layout(layout)
    if entry.takes_density:
        pruned = so.prune(w, layout, 0.35, **options)
    else:
        pruned = so.prune(w, layout, **options)
    s = so.to_sparse(pruned.to(dtype), layout, **options)
    return s.to(device=device) if device != "cpu" else s


def _double(args: tuple) -> tuple:
    return tuple(a.double() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                 for a in args)


def product_args(s: so.SparseMatrix, product: str, g: torch.Generator, n: int = 5) -> tuple:
    """The arguments of ``product`` on ``s`` (dense operands random, in ``s.dtype``)."""
    m, k = s.shape
    kw = {"dtype": s.dtype, "device": s.device}
    st, p, aux = s.structure(), s.params(), s.aux()
    if product == "spmm":
        return (*st, s.values, torch.randn(k, n, generator=g).to(**kw), *p, *aux)
    if product == "spmm_t":
        return (*st, s.values, torch.randn(m, n, generator=g).to(**kw), k, *p, *aux)
    if product == "sddmm":
        return (*st, torch.randn(m, n, generator=g).to(**kw),
                torch.randn(k, n, generator=g).to(**kw), *p, *aux)
    return (*st, s.values, torch.randn(3, k, generator=g).to(**kw),
            torch.randn(m, generator=g).to(**kw), *p, *aux)


def _reference(layout: str, product: str) -> Callable:
    ref = backend_ops(layout, "reference")
    if product != "linear":
        return getattr(ref, product)
    ns = ref.n_struct

    def linear(*args):
        struct, values, x, bias, rest = args[:ns], args[ns], args[ns + 1], args[ns + 2], \
            args[ns + 3:]
        y = ref.spmm(*struct, values, x.t(), *rest).t()
        return y if bias is None else y + bias

    return linear


def check_products(layout: str, backend: str, shape: tuple[int, int], options: dict,
                   dtype: torch.dtype, g: torch.Generator, device: str = "cpu") -> None:
    """Every product of ``backend`` against the reference in float64."""
    s = make_matrix(layout, shape, options, dtype, g, device)
    ops = backend_ops(layout, backend)
    for product in PRODUCTS:
        args = product_args(s, product, g)
        if product == "linear":
            got = so.linear(args[ops.n_struct + 1], s, args[ops.n_struct + 2], backend=backend)
        else:
            got = getattr(ops, product)(*args)
        want = _reference(layout, product)(*_double(args))
        assert got.dtype == dtype, (layout, backend, product, got.dtype)
        assert got.shape == want.shape, (layout, backend, product, got.shape, want.shape)
        assert rel_err(got, want) < TOL[dtype], (layout, backend, product, dtype)


def check_opcheck(layout: str, backend: str, shape: tuple[int, int], options: dict,
                  dtype: torch.dtype, g: torch.Generator, device: str = "cpu") -> None:
    """``torch.library.opcheck`` of each custom op of ``backend`` (schema, fake, autograd)."""
    s = make_matrix(layout, shape, options, dtype, g, device)
    ops = backend_ops(layout, backend)
    for product in PRODUCTS:
        op = getattr(ops, product)
        if op is None:
            continue
        args = product_args(s, product, g)
        grad = tuple(a.clone().requires_grad_(True)
                     if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)
        torch.library.opcheck(op, grad)


def check_gradients(layout: str, backend: str, shape: tuple[int, int], options: dict,
                    g: torch.Generator, device: str = "cpu") -> None:
    """Gradients of ``so.matmul`` and ``so.linear`` (values, x, bias) against the reference."""
    s = make_matrix(layout, shape, options, torch.float64, g, device)
    m, k = s.shape
    x0 = torch.randn(k, 4, generator=g, dtype=torch.float64).to(device)
    xb0 = torch.randn(3, k, generator=g, dtype=torch.float64).to(device)
    b0 = torch.randn(m, generator=g, dtype=torch.float64).to(device)
    grads = {}
    for bk in (backend, "reference"):
        v = s.values.detach().clone().requires_grad_(True)
        x, xb, b = (t.clone().requires_grad_(True) for t in (x0, xb0, b0))
        sv = s.with_values(v)
        (so.matmul(sv, x, backend=bk).square().sum()
         + so.linear(xb, sv, b, backend=bk).square().sum()).backward()
        grads[bk] = (v.grad, x.grad, xb.grad, b.grad)
    for got, want in zip(grads[backend], grads["reference"], strict=True):
        assert rel_err(got, want) < 1e-10, (layout, backend)
