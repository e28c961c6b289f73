"""Measurements: each script prints its figures (ratios against an anchor from the same run). Run from the
repository root as `python -m benchmarks.NAME`."""
