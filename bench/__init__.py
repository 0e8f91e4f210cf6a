"""Benchmarks of aTES, each runnable as ``python -m bench.<name>``."""
