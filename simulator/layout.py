"""How an unstructured-sparse weight tile is stored (its layout): the metadata words of each.

``Arch(sparsity="unstructured", layout=...)`` picks the layout of the weight tiles the array
fetches (the other sparsity modes have their own fixed layouts and ignore it). The names are
``sparse_ops``'s layouts of the same storage (``"csr"``, ``"bitmap"``); ``weight_format`` is
the field's former name, still accepted with a ``DeprecationWarning`` (see ``arch.py``).
Both keep the nonzero values packed, one word each; they differ in the metadata that says
where the values sit. For a tile of ``P`` weight positions cut into ``lanes`` lanes (PE
columns in ``os``/``ws``, PE rows in ``is``) holding ``nnz`` nonzeros, with index width
``b = index_bits`` (``ceil(log2 K)``, ``is``: ``ceil(log2 N)``) and ``w = word_bits``:

* ``"csr"`` (the default, the model the simulator always had): a ``b``-bit index per nonzero
  plus one pointer (count) word per lane::

      csr_words(tile) = ceil(nnz * b / w) + lanes

* ``"bitmap"`` (SparAMX, arXiv 2502.12444): one bit per position, no per-lane pointers (a
  lane finds its values by a popcount of the bits before it)::

      bitmap_words(tile) = ceil(P / w)

At density ``d = nnz / P``, ignoring the rounding, the metadata alone costs the same at
``d* = 1 / b`` (bitmap cheaper above, CSR cheaper below); CSR's lane pointers move the exact
crossing down to ``(1 / b) * (1 - w / L)`` with ``L = P / lanes`` positions per lane. With
the values counted too, a bitmap tile (``d P + P / w`` words) is as large as the dense tile
(``P`` words) at ``d = 1 - 1 / w``, a CSR tile (``d P (1 + b / w) + P / L``) at
``d = (1 - 1 / L) / (1 + b / w)``.
"""

from __future__ import annotations

import numpy as np

LAYOUTS = ("csr", "bitmap")
DEFAULT_LAYOUT = "csr"
# The former names (``Arch.weight_format``), kept so code written against them still works.
WEIGHT_FORMATS = LAYOUTS
DEFAULT_WEIGHT_FORMAT = DEFAULT_LAYOUT

__all__ = ["DEFAULT_LAYOUT", "DEFAULT_WEIGHT_FORMAT", "LAYOUTS", "WEIGHT_FORMATS",
           "bitmap_words", "break_even_density", "check_layout", "csr_words",
           "dense_break_even_density", "metadata_words"]

I64 = np.int64


def check_layout(value: object, name: str = "Arch.layout") -> str:
    """``value`` as a layout (stripped, lower case).

    Args:
        value: the layout given.
        name: what the caller calls it, for the error message.
    Raises:
        TypeError: not a string.
        ValueError: not one of ``LAYOUTS``.
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__} {value!r}")
    layout = value.strip().lower()
    if layout not in LAYOUTS:
        raise ValueError(f"{name} must be one of {LAYOUTS}, got {value!r}")
    return layout


def _ceil_div(a: np.ndarray | int, b: int) -> np.ndarray:
    return -(-np.asarray(a, dtype=I64) // b)


def csr_words(nnz: np.ndarray | int, lanes: np.ndarray | int, index_bits: int,
              word_bits: int) -> np.ndarray:
    """CSR metadata of tiles: ``ceil(nnz * index_bits / word_bits) + lanes`` words each."""
    return _ceil_div(np.asarray(nnz, dtype=I64) * index_bits, word_bits) \
        + np.asarray(lanes, dtype=I64)


def bitmap_words(positions: np.ndarray | int, word_bits: int) -> np.ndarray:
    """Bitmap metadata of tiles: ``ceil(positions / word_bits)`` words each."""
    return _ceil_div(positions, word_bits)


def metadata_words(layout: str, *, nnz: np.ndarray | int, positions: np.ndarray | int,
                   lanes: np.ndarray | int, index_bits: int, word_bits: int) -> np.ndarray:
    """Metadata words of tiles stored in ``layout`` (``"csr"`` or ``"bitmap"``), element-wise.

    ``nnz``: nonzeros of each tile; ``positions``: weight positions the tile covers (its
    bits in a bitmap); ``lanes``: lanes the tile spans (CSR pointers); ``index_bits``: CSR
    index width. Tiles without a nonzero are not stored and cost 0 in either format.
    """
    nnz = np.asarray(nnz, dtype=I64)
    if layout == "csr":
        words = csr_words(nnz, lanes, index_bits, word_bits)
    elif layout == "bitmap":
        words = bitmap_words(positions, word_bits)
    else:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    return np.where(nnz > 0, words, 0)


def break_even_density(index_bits: int, word_bits: int | None = None,
                       lane_positions: int | None = None) -> float:
    """Density at which CSR and bitmap metadata cost the same (bitmap cheaper above).

    ``1 / index_bits`` for the metadata alone; with ``word_bits`` and ``lane_positions``
    (``L``) CSR's one pointer word per lane is counted too: ``(1 / index_bits) * (1 - w / L)``
    (clipped at 0). Rounding to whole words per tile is ignored.
    """
    d = 1.0 / index_bits
    if word_bits is not None and lane_positions is not None:
        d *= max(0.0, 1.0 - word_bits / lane_positions)
    return d


def dense_break_even_density(layout: str, word_bits: int, index_bits: int | None = None,
                             lane_positions: int | None = None) -> float:
    """Density at which a tile stored in ``layout`` (values + metadata) is as large as dense.

    Bitmap: ``1 - 1 / word_bits``. CSR: ``(1 - 1 / L) / (1 + index_bits / word_bits)`` with
    ``L = lane_positions`` (``1 / L`` dropped when it is ``None``). Below it the sparse tile is
    smaller. Rounding to whole words per tile is ignored.
    """
    if layout == "bitmap":
        return 1.0 - 1.0 / word_bits
    if layout == "csr":
        if index_bits is None:
            raise ValueError("the CSR break-even against dense needs index_bits")
        pointers = 1.0 / lane_positions if lane_positions else 0.0
        return (1.0 - pointers) / (1.0 + index_bits / word_bits)
    raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
