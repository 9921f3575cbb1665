"""Benchmarks (`make bench`, `make bench-validate`); not part of `make test`."""
