"""Benchmarks of the relay, the scan and the indicators against same-run baselines: `python -m bench`."""
