"""Benchmarks: python -m benchmarks.NAME (see each module's docstring)."""
