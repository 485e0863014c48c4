"""Dynamic sparse training on the sparse kernels: prune-and-grow, no dense copy of a weight.

``DynamicSparsity(model, optimizer, prune=..., grow=...)`` rewrites the structure of every
``SparseLinear`` every ``update_every`` steps (see ``dynamic_sparsity.py``); the criteria,
growth rules, schedule, optimizer-state carry-over and distributed agreement live one per file.
"""

from .criteria import PRUNE_CRITERIA, prune_scores, select_prune
from .distributed import prepare_ddp, structure_digest
from .dynamic_sparsity import DynamicSparsity
from .growth import GROWTH
from .schedule import SCHEDULES, DropSchedule

__all__ = [
    "GROWTH",
    "PRUNE_CRITERIA",
    "SCHEDULES",
    "DropSchedule",
    "DynamicSparsity",
    "prepare_ddp",
    "prune_scores",
    "select_prune",
    "structure_digest",
]
