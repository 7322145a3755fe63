"""Benchmarks run by ``tools/benchmark.py``."""
