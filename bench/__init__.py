"""Benchmarks and the claims report: real kernels and the simulator on the same workloads."""

from .repo_paths import hide_repo_folders

hide_repo_folders()
