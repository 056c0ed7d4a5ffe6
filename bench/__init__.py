"""Benchmarks of the platform (`make bench`, `python -m bench.run [--quick]`). Not tests: no timing
assertion anywhere; figures land in bench/results.json and docs/benchmarks.md.

run.py orchestrates; each report section is a module `<section>_bench.py` with `run(...)` and
`markdown(...)`; common.py is what they share; report.py renders the document and its plots;
loadgen.py, minimal_app.py and fault_upstream.py are the load generator and the stand-in servers.
"""
