"""Benchmark and analysis scripts, each run from the repository root as `python -m experiments.<name>`."""
