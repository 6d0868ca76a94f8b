"""Benchmark cases: one adapter class per implementation, the case data, the registry."""
