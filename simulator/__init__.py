"""A fast systolic-array accelerator simulator for dense and sparse GEMMs (numpy only).

See ``simulator/README.md`` for the model. This module only re-exports the public names.
"""

from .arch import DATAFLOWS, SPARSITY_MODES, Arch
from .config import ConfigError, load_scalesim_config
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
from .sweep import grid_points, sweep
from .topology import bundled_topology, load_topology
from .workload import ConvShape, Layer

__all__ = [
    "DATAFLOWS", "SPARSITY_MODES", "Arch", "ConfigError", "ConvShape", "EnergyTable", "Layer",
    "Result", "bundled_topology", "default_table", "estimate_energy", "grid_points",
    "load_scalesim_config", "load_topology", "prepare_mask", "simulate_conv", "simulate_gemm",
    "simulate_layers", "simulate_sddmm", "simulate_topology", "summarize", "sweep",
    "synthetic_weight",
]
