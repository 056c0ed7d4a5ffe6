"""Benchmarks of the platform (`make bench`, `python -m bench.run [--quick]`). Not tests: no timing
assertion anywhere; figures land in bench/results.json and docs/benchmarks.md."""
