"""Benchmarks (not tests): `python -m bench.run_all`, or one of them alone, e.g. `python -m bench.write_count`.

Each writes bench/results/<name>.json and prints a summary. See BENCHMARKS.md.
"""
