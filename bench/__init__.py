"""Benchmarks and the claims report: real kernels and the simulator on the same workloads."""
