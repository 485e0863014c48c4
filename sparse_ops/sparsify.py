"""``sparsify``: swap a model's ``nn.Linear`` layers for ``SparseLinear``."""

from __future__ import annotations

import logging
from collections.abc import Callable

from torch import nn

from .layer import SparseLinear

log = logging.getLogger(__name__)


def _unsafe_reason(name: str, module: nn.Linear, parents: list[nn.Module]) -> str | None:
    """Why swapping this Linear would break its model, or None when it is safe."""
    if type(module) is not nn.Linear:
        # Subclasses such as NonDynamicallyQuantizableLinear are read through .weight by
        # their owners (nn.MultiheadAttention's out_proj).
        return f"a {type(module).__name__}, a subclass of nn.Linear read by its owner"
    for p in parents:
        if isinstance(p, nn.MultiheadAttention):
            return "inside nn.MultiheadAttention, which reads .weight directly"
    return None


def sparsify(
    model: nn.Module,
    layout: str,
    *,
    density: float | None = None,
    blocksize: tuple[int, int] | None = None,
    n: int | None = None,
    m: int | None = None,
    filter: Callable[[str, nn.Linear], bool] | None = None,
    backend: str | None = None,
) -> nn.Module:
    """Replace, in place, each plain ``nn.Linear`` of ``model`` by a pruned ``SparseLinear``.

    ``filter(name, module) -> bool`` picks which layers to consider (default: all). Layers
    whose owner reads ``.weight`` directly (inside ``nn.MultiheadAttention``, or Linear
    subclasses) and layers whose shape does not fit the pattern (a BSR block that does not
    divide the weight) are left dense. Returns ``model``; ``model.sparsified`` lists the
    swapped layers' names, ``model.sparsify_skipped`` maps each skipped name to the reason.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    swapped: list[str] = []
    skipped: dict[str, str] = {}

    def visit(module: nn.Module, prefix: str, parents: list[nn.Module]) -> None:
        for child_name, child in list(module.named_children()):
            name = f"{prefix}{child_name}"
            if isinstance(child, nn.Linear):
                if filter is not None and not filter(name, child):
                    continue
                reason = _unsafe_reason(name, child, parents + [module])
                if reason is None:
                    try:
                        new = SparseLinear.from_dense(
                            child, layout, density=density, blocksize=blocksize, n=n, m=m,
                            backend=backend,
                        )
                    except ValueError as e:
                        if "blocksize" not in str(e):
                            raise
                        reason = str(e)
                    else:
                        setattr(module, child_name, new)
                        swapped.append(name)
                        continue
                skipped[name] = reason
            else:
                visit(child, f"{name}.", parents + [module])

    visit(model, "", [])
    model.sparsified = swapped
    model.sparsify_skipped = skipped
    log.info("sparsify: swapped %d Linear layers %s; left dense %s", len(swapped), swapped,
             skipped)
    return model
