"""A fast systolic-array accelerator simulator for dense and sparse GEMMs (numpy only).

See ``simulator/README.md`` for the model. This module only re-exports the public names.
"""

from .arch import DATAFLOWS, SPARSITY_MODES, Arch
from .area import AreaTable, default_area_table, estimate_area
from .config import ConfigError, load_scalesim_config
from .design_point import SIMULATOR_VERSION, DesignPoint, design_points
from .energy import EnergyTable, default_table, estimate_energy
from .engine import (
    prepare_mask,
    simulate_conv,
    simulate_gemm,
    simulate_layers,
    simulate_sddmm,
    simulate_topology,
)
from .layout import LAYOUTS, WEIGHT_FORMATS
from .model_workload import ModelWorkload, workload_from_model
from .nsga_search import SearchResult, search
from .pareto import pareto
from .pattern import WeightPattern
from .prepared import PreparedWorkload
from .result import Result, summarize
from .results_store import ResultsStore
from .space import Space, SpaceError, load_space
from .sparsity import synthetic_mask, synthetic_weight
from .sweep import grid_points, sweep
from .topology import bundled_topology, load_topology
from .workload import ConvShape, Layer
from .workload_export import write_scalesim_topology, write_zigzag_workload

__version__ = SIMULATOR_VERSION


__all__ = [
    "DATAFLOWS", "LAYOUTS", "SIMULATOR_VERSION", "SPARSITY_MODES", "WEIGHT_FORMATS", "Arch",
    "AreaTable", "ConfigError", "ConvShape", "DesignPoint", "EnergyTable", "Layer",
    "PreparedWorkload", "Result", "ResultsStore", "SearchResult", "Space", "SpaceError",
    "WeightPattern",
    "bundled_topology", "default_area_table", "default_table", "design_points",
    "estimate_area", "estimate_energy", "grid_points", "load_scalesim_config", "load_space",
    "load_topology", "pareto", "prepare_mask", "search", "simulate_conv", "simulate_gemm",
    "simulate_layers", "simulate_sddmm", "simulate_topology", "summarize", "sweep",
    "synthetic_mask", "synthetic_weight",
    # a PyTorch model as a workload, and exports for SCALE-Sim / ZigZag
    "ModelWorkload", "workload_from_model", "write_scalesim_topology", "write_zigzag_workload",
]
