"""The benchmark suite behind ``python -m benchmarks``: one module per item (see README.md)."""
