"""Argument checks shared by the formats and ops: each error names the argument at fault."""

from __future__ import annotations

import torch

from .dtypes import INPUT_INDEX_DTYPES, VALUE_DTYPES


def check_tensor(name: str, t: object, ndim: int | None = None) -> torch.Tensor:
    """Raise TypeError unless ``t`` is a tensor, ValueError unless it has ``ndim`` dims."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.layout != torch.strided:
        raise TypeError(f"{name}: expected a dense (strided) tensor, got layout {t.layout}")
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D tensor, got shape {tuple(t.shape)}")
    return t


def check_float(name: str, t: torch.Tensor) -> None:
    if t.dtype not in VALUE_DTYPES:
        names = ", ".join(str(d).removeprefix("torch.") for d in VALUE_DTYPES)
        raise TypeError(f"{name}: expected a floating dtype ({names}), got {t.dtype}")


def check_index(name: str, t: torch.Tensor) -> None:
    if t.dtype not in INPUT_INDEX_DTYPES:
        raise TypeError(f"{name}: expected an integer index dtype (int16/32/64), got {t.dtype}")


def check_density(density: object) -> float:
    if isinstance(density, bool) or not isinstance(density, (int, float)):
        raise TypeError(f"density: expected a number in (0, 1], got {type(density).__name__}")
    if not 0.0 < float(density) <= 1.0:
        raise ValueError(f"density: must lie in (0, 1], got {density}")
    return float(density)


def check_nm(n: object, m: object) -> tuple[int, int]:
    for name, v in (("n", n), ("m", m)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name}: expected an int, got {type(v).__name__}")
    if not 1 <= n < m <= 16:  # type: ignore[operator]
        raise ValueError(f"n, m: need 1 <= n < m <= 16, got n={n}, m={m}")
    return int(n), int(m)  # type: ignore[arg-type]


def check_blocksize(blocksize: object, shape: tuple[int, int]) -> tuple[int, int]:
    """A blocksize (R, C) of positive ints that divides ``shape``."""
    if (
        not isinstance(blocksize, (tuple, list))
        or len(blocksize) != 2
        or not all(isinstance(b, int) and not isinstance(b, bool) for b in blocksize)
    ):
        raise TypeError(f"blocksize: expected a pair of ints (R, C), got {blocksize!r}")
    r, c = int(blocksize[0]), int(blocksize[1])
    if r < 1 or c < 1:
        raise ValueError(f"blocksize: entries must be >= 1, got {(r, c)}")
    m, k = shape
    if m % r or k % c:
        raise ValueError(
            f"blocksize: {(r, c)} does not divide the matrix shape {(m, k)}; pad the matrix "
            f"with zeros to a multiple of the block (rows to {-(-m // r) * r}, columns to "
            f"{-(-k // c) * c}) or pick a block that divides it"
        )
    return r, c


def index_dtype_for(extent: int) -> torch.dtype:
    """The narrowest index dtype that holds indices in [0, extent): int16 or int32."""
    if extent <= 32767:
        return torch.int16
    if extent <= 2**31 - 1:
        return torch.int32
    raise ValueError(f"dimension {extent} too large for 32-bit indices")
