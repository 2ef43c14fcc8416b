"""Benchmarks: run with `make bench` (or `python -m bench <name>`); results in bench/RESULTS.md."""
