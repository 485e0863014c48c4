"""The claims report: the literature's hardware claims on sparsity, checked against the real
kernels and the simulator (``python -m bench.claims``)."""

from .config import FULL, QUICK, TINY, Sizes
from .run import run_claims

__all__ = ["FULL", "QUICK", "TINY", "Sizes", "run_claims"]
