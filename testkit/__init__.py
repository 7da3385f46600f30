"""Support code the tests and the benchmarks share: server processes, raw HTTP, sample data.

Nothing the service or the function ships imports it.
"""
