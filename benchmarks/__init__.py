"""Benchmarks of jetti-frames against the embedded sandbox; run ``python -m benchmarks``.

Not part of the test suite: they measure wall time, which tests never assert.
"""
