"""Run sizes: the full report, ``--quick`` (CI, about a minute) and ``--tiny`` (unit tests)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """Every size a claims run uses.

    The sparse weight is ``rows x cols`` (out x in features, fp32 on CPU), multiplied by a dense
    ``cols x batch`` input. Densities are fractions of nonzeros (0..1]. Times are medians of
    ``repeat`` samples, each looped to last at least ``min_time`` seconds; dense and
    sparse medians alternate ``rounds`` times and the median of those counts.
    """

    name: str
    rows: int
    cols: int
    batches: tuple[int, ...]          # claim 1: batch sizes (columns of X)
    densities: tuple[float, ...]      # claims 1, 2, 4: density sweep, ascending
    blocks: tuple[int, ...]           # claim 2: square block sizes, 1 = CSR
    block_batch: int                  # claim 2: batch of the block sweep
    bytes_blocks: tuple[int, ...]     # claim 4: BSR block sizes measured at batch 1
    nm_patterns: tuple[tuple[int, int], ...]  # claim 4: N:M patterns at batch 1
    storage_densities: tuple[float, ...]      # claim 5: nbytes sweep
    imbalance_density: float          # claim 6
    imbalance_alpha: float            # claim 6: power-law exponent of nonzeros per row
    train_batch: int                  # claims 6 and 8: batch (tokens) of the products
    train_densities: tuple[float, ...]  # claim 8
    train_blocks: tuple[int, ...]     # claim 8: BSR block sizes besides CSR
    repeat: int                       # samples per median
    rounds: int                       # alternating dense/sparse medians per cell
    attempts: int                     # timings of a cell at most, when other work disturbs it
    retry_budget_s: float             # no more re-timing once the run is this old (seconds)
    min_time: float                   # seconds per timing sample
    peak_side: int                    # side of the square torch.mm measuring peak FLOP/s
    dram_copy_mib: int                # MiB copied to measure DRAM bandwidth

    def __post_init__(self) -> None:
        for b in self.blocks + self.bytes_blocks + self.train_blocks:
            if self.rows % b or self.cols % b:
                raise ValueError(
                    f"blocks: block size {b} must divide the weight {self.rows}x{self.cols}"
                )
        if list(self.densities) != sorted(self.densities):
            raise ValueError(f"densities: must be ascending, got {self.densities}")


FULL = Sizes(
    name="full", rows=2048, cols=2048, batches=(1, 8, 128, 512),
    densities=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9),
    blocks=(1, 2, 4, 8, 16, 32), block_batch=128, bytes_blocks=(4, 16),
    nm_patterns=((2, 4), (1, 4), (1, 8), (1, 16)),
    storage_densities=tuple(round(0.05 * i, 2) for i in range(1, 21)),
    imbalance_density=0.1, imbalance_alpha=1.0, train_batch=128, train_densities=(0.1, 0.5),
    train_blocks=(16,), repeat=5, rounds=3, attempts=3, retry_budget_s=150, min_time=0.01,
    peak_side=2048, dram_copy_mib=512,
)

QUICK = Sizes(
    name="quick", rows=1024, cols=1024, batches=(1, 8, 128, 512),
    densities=(0.02, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9),
    blocks=(1, 2, 4, 8, 16, 32), block_batch=128, bytes_blocks=(4, 16),
    nm_patterns=((2, 4), (1, 4), (1, 8)),
    storage_densities=tuple(round(0.1 * i, 1) for i in range(1, 11)),
    imbalance_density=0.1, imbalance_alpha=1.0, train_batch=128, train_densities=(0.1, 0.5),
    train_blocks=(16,), repeat=3, rounds=3, attempts=2, retry_budget_s=20,
    min_time=0.005,
    peak_side=1024, dram_copy_mib=256,
)

TINY = Sizes(
    name="tiny", rows=256, cols=256, batches=(1, 8, 128, 512),
    densities=(0.05, 0.3, 0.7),
    blocks=(1, 4, 16), block_batch=128, bytes_blocks=(16,),
    nm_patterns=((2, 4), (1, 4)),
    storage_densities=(0.2, 0.4, 0.6, 0.8, 1.0),
    imbalance_density=0.1, imbalance_alpha=1.0, train_batch=32, train_densities=(0.1, 0.5),
    train_blocks=(), repeat=3, rounds=1, attempts=1, retry_budget_s=0,
    min_time=0.001,
    peak_side=512, dram_copy_mib=64,
)

SIZES = {s.name: s for s in (FULL, QUICK, TINY)}
