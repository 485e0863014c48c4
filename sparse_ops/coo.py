"""COO expansion for the reference products: a pattern as explicit (row, column) lists.

The formats' reference products (``reference_spmm`` and siblings) expand their structure to
row and column index lists and run plain torch ops on them: correct for any pattern and
differentiable by torch itself, for checking the fast kernels on modest sizes, not for speed.
"""

from __future__ import annotations

import torch


def rows_of_pointers(crow: torch.Tensor, count: int) -> torch.Tensor:
    """int64 ``(count,)``: the row of each entry of a row-pointer (CSR / BSR) structure."""
    counts = crow.diff().long()
    rows = torch.arange(crow.numel() - 1, device=crow.device)
    return torch.repeat_interleave(rows, counts, output_size=count)


def coo_spmm(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, x: torch.Tensor,
             num_rows: int) -> torch.Tensor:
    """``out[rows[p]] += values[p] * x[cols[p]]``: ``(num_rows, N)``."""
    out = torch.zeros(num_rows, x.shape[1], dtype=x.dtype, device=x.device)
    return out.index_add(0, rows, values.unsqueeze(1) * x[cols])


def coo_sddmm(rows: torch.Tensor, cols: torch.Tensor, a: torch.Tensor,
              b: torch.Tensor) -> torch.Tensor:
    """``<a[rows[p]], b[cols[p]]>`` for each entry ``p``."""
    return (a[rows] * b[cols]).sum(-1)
