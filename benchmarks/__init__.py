"""Benchmarks of issue 8: throughput against plain funasr, the Triton overhead, BI latency, peak memory.

Run ``make bench`` (full size) or ``python -m benchmarks --quick`` (the tiny trained fixture model, a smoke run).
"""
