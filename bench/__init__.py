"""Benchmarks of order-saga, with their results: see bench/README.md.

Run them all with `venv/bin/python -m bench.run` (or `venv/bin/python bench/run.py`).
"""
