"""A fast systolic-array accelerator simulator for dense and sparse GEMMs (numpy only).

See ``simulator/README.md`` for the model. The public names are re-exported here.
"""

from .arch import DATAFLOWS, SPARSITY_MODES, Arch
from .energy import EnergyTable, default_table, estimate_energy
from .engine import (
    prepare_mask,
    simulate_conv,
    simulate_gemm,
    simulate_layers,
    simulate_sddmm,
    simulate_topology,
)
from .result import Result, summarize
from .sparsity import synthetic_weight
from .workload import ConvShape, Layer

__all__ = [
    "DATAFLOWS", "SPARSITY_MODES", "Arch", "ConvShape", "EnergyTable", "Layer", "Result",
    "default_table", "estimate_energy", "prepare_mask", "simulate_conv", "simulate_gemm",
    "simulate_layers", "simulate_sddmm", "simulate_topology", "summarize", "synthetic_weight",
]
