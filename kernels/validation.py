"""Argument checks shared by the kernel launchers.

Every error names the argument and says what was expected: ``TypeError`` for a wrong type or
dtype, ``ValueError`` for a wrong shape or device, ``RuntimeError`` when no Triton backend can
run the kernel (a CPU tensor without ``TRITON_INTERPRET=1``).
"""

from collections.abc import Sequence

import torch

from .autotune import FLOAT_DTYPES, INTERPRET


def _dtype_names(dtypes: Sequence[torch.dtype]) -> str:
    return " or ".join(str(d).removeprefix("torch.") for d in dtypes)


def check_tensor(name: str, t: object, *, ndim: int, dtypes: Sequence[torch.dtype]) -> None:
    """``t`` is a tensor with ``ndim`` dims and one of ``dtypes``."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in dtypes:
        raise TypeError(f"{name} must have dtype {_dtype_names(dtypes)}, got {t.dtype}")
    if t.dim() != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(t.shape)}")


# W8A16: the spmm products (``S @ x``) also take int8 ``values`` with an ``x`` of one of these
# dtypes. The kernels widen the integers in registers; the output has x's dtype and no scale is
# applied (the caller multiplies rows by the quantization scales). Inference only: no other
# product, and so no backward, takes int8.
INT8_X_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.bfloat16, torch.float16)
_INT8_SPMM_ONLY = (
    "int8 values are inference only (S @ x): only the spmm products take them, as values, "
    f"with x of dtype {_dtype_names(INT8_X_DTYPES)}"
)


def check_values(name: str, t: object, *, ndim: int, int8: bool = False) -> None:
    """``t`` holds floating values the kernels take (fp16, bf16, fp32, fp64); with ``int8``
    (the ``values`` of an spmm product) int8 too, paired with x by :func:`check_spmm_dtypes`."""
    if isinstance(t, torch.Tensor) and t.dtype == torch.int8:
        if not int8:
            raise TypeError(
                f"{name} must have dtype {_dtype_names(FLOAT_DTYPES)}, got {t.dtype}: "
                + _INT8_SPMM_ONLY
            )
        check_tensor(name, t, ndim=ndim, dtypes=(torch.int8,))
        return
    check_tensor(name, t, ndim=ndim, dtypes=FLOAT_DTYPES)


def check_same_dtype(ref_name: str, ref: torch.Tensor, **others: torch.Tensor) -> None:
    """Every tensor in ``others`` has the dtype of ``ref``."""
    for name, t in others.items():
        if t.dtype != ref.dtype:
            raise TypeError(
                f"{name} must have the dtype of {ref_name} ({ref.dtype}), got {t.dtype}"
            )


def check_spmm_dtypes(values: torch.Tensor, x: torch.Tensor) -> None:
    """The dtypes an spmm product takes (after :func:`check_values` on both): ``x`` has the
    dtype of ``values``, or, for int8 ``values`` (W8A16), one of :data:`INT8_X_DTYPES`."""
    if values.dtype != torch.int8:
        check_same_dtype("values", values, x=x)
    elif x.dtype not in INT8_X_DTYPES:
        raise TypeError(
            f"x must have dtype {_dtype_names(INT8_X_DTYPES)} with int8 values (W8A16), "
            f"got {x.dtype}"
        )


def check_device(**tensors: torch.Tensor) -> torch.device:
    """All tensors share one device, and Triton can run there. Returns that device."""
    items = list(tensors.items())
    first_name, first = items[0]
    for name, t in items[1:]:
        if t.device != first.device:
            raise ValueError(
                f"{name} is on {t.device} but {first_name} is on {first.device}: "
                "all arguments must be on one device"
            )
    device = first.device
    if device.type == "cpu":
        if not INTERPRET:
            raise RuntimeError(
                "the Triton kernels run on CPU tensors only under the Triton interpreter: "
                "set TRITON_INTERPRET=1 before triton is imported, or use CUDA tensors"
            )
    elif device.type != "cuda":
        raise ValueError(f"{first_name} is on {device}: the Triton kernels need cuda or cpu")
    return device


def check_dim(name: str, value: int, expected: int, what: str) -> None:
    """A size read from an argument equals the one the other arguments imply."""
    if value != expected:
        raise ValueError(f"{name}: expected {what} = {expected}, got {value}")


def check_out(
    out: torch.Tensor | None,
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    """``out`` if given and matching, else a new tensor; every element is written by the
    kernel, so a new one is left uninitialised."""
    if out is None:
        return torch.empty(shape, dtype=dtype, device=device)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"out must be a torch.Tensor, got {type(out).__name__}")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"out must have shape {tuple(shape)}, got {tuple(out.shape)}")
    if out.dtype != dtype:
        raise TypeError(f"out must have dtype {dtype}, got {out.dtype}")
    if out.device != device:
        raise ValueError(f"out must be on {device}, got {out.device}")
    return out


def check_size(name: str, value: object) -> None:
    """``value`` is a non-negative int (or a symbolic int under ``torch.compile``)."""
    if isinstance(value, bool) or not isinstance(value, (int, torch.SymInt)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
