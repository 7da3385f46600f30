"""Benchmarks of the prediction service: `make bench`, or `python -m bench.run --help`."""
