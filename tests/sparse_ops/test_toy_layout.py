"""A layout added from outside the package: ELL (every row holds W slots, padded with stored
zeros), reference backend only, defined and registered in this module with no edit to any
package file. It passes the conformance suite and works through the public API: to_sparse,
prune (its family), matmul, linear, SparseLinear and its gradients.
"""

from __future__ import annotations

import pytest
import torch

import sparse_ops as so
from sparse_ops.format import SparseMatrix, fit_error
from sparse_ops.registry import get_layout, names, register_layout
from tests.helpers import draw_seed, rel_err
from tests.sparse_ops import conformance as cf


class ELLMatrix(SparseMatrix):
    """``cols`` int64 ``(M, W)`` and ``values`` ``(M, W)``: row ``i`` holds ``values[i, w]`` at
    column ``cols[i, w]`` (a padding slot holds 0 at column 0)."""

    layout = "ell_test"
    family = "unstructured"
    tensor_names = ("cols", "values")
    structure_names = ("cols",)

    def __init__(self, cols, values, shape, validate=True):
        super().__init__(shape)
        if validate:
            m, k = self.shape
            if cols.shape != values.shape or cols.shape[0] != m:
                raise ValueError(f"cols: expected the shape of values ({m}, W)")
            if cols.numel() and (int(cols.min()) < 0 or int(cols.max()) >= k):
                raise ValueError(f"cols: entries must lie in [0, {k})")
        self.cols, self.values = cols, values

    @classmethod
    def from_parts(cls, tensors, shape, params=(), validate=True):
        return cls(tensors["cols"], tensors["values"], shape, validate)

    @classmethod
    def from_dense(cls, dense):
        m, k = dense.shape
        nz = dense != 0
        w = int(nz.sum(1).max()) if m else 0
        order = torch.sort(nz.to(torch.int8), dim=1, descending=True, stable=True).indices
        cols = order[:, :w].contiguous()
        values = dense.gather(1, cols) * nz.gather(1, cols)
        return cls(torch.where(nz.gather(1, cols), cols, 0), values, (m, k), validate=False)

    def to_dense(self):
        out = torch.zeros(self.shape, dtype=self.dtype, device=self.device)
        return out.scatter_add_(1, self.cols, self.values)

    def check_fit(self):
        if self.cols.shape != self.values.shape or self.values.shape[0] != self.shape[0]:
            fit_error("values", f"expected ({self.shape[0]}, W) like cols")

    @staticmethod
    def rows_of(structure, values, params):
        return values.shape[0]

    @staticmethod
    def sddmm_shape(structure, a, b, params):
        return tuple(structure[0].shape)

    @staticmethod
    def reference_spmm(cols, values, x):
        return (values.unsqueeze(-1) * x[cols]).sum(1)

    @staticmethod
    def reference_spmm_t(cols, values, d, num_cols):
        w = cols.shape[1]
        out = torch.zeros(num_cols, d.shape[1], dtype=d.dtype, device=d.device)
        contrib = values.reshape(-1, 1) * d.repeat_interleave(w, 0)
        return out.index_add(0, cols.reshape(-1), contrib)

    @staticmethod
    def reference_sddmm(cols, a, b):
        return (a.unsqueeze(1) * b[cols]).sum(-1)


if "ell_test" not in names():
    register_layout(ELLMatrix)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", [(13, 29), (1, 7), (8, 64)])
def test_toy_layout_passes_the_conformance_suite(shape, dtype):
    g = torch.Generator().manual_seed(draw_seed())
    cf.check_products("ell_test", "reference", shape, {}, dtype, g)


def test_toy_layout_gradients():
    g = torch.Generator().manual_seed(draw_seed())
    cf.check_gradients("ell_test", "reference", (11, 17), {}, g)


def test_toy_layout_through_the_public_api():
    g = torch.Generator().manual_seed(draw_seed())
    w = torch.randn(9, 20, generator=g)
    assert get_layout("ell_test").family == "unstructured"
    p = so.prune(w, "ell_test", 0.3)  # its family decides what competes
    assert int((p != 0).sum()) == round(0.3 * w.numel())
    s = so.to_sparse(p, "ell_test")
    assert isinstance(s, ELLMatrix) and torch.equal(s.to_dense(), p)
    x = torch.randn(20, 3, generator=g)
    assert rel_err(so.matmul(s, x, backend="reference"), p.double() @ x.double()) < 1e-5
    layer = so.SparseLinear(s, torch.randn(9, generator=g), backend="reference")
    xb = torch.randn(4, 20, generator=g, requires_grad=True)
    y = layer(xb)
    assert rel_err(y, xb.double() @ p.double().T + layer.bias.double()) < 1e-5
    y.sum().backward()
    assert layer.values.grad is not None and layer.values.grad.shape == s.values.shape
    with pytest.raises(ValueError, match="cpp"):  # no C++ kernels for it: a clear error
        so.matmul(s, x)
