"""Small, offline examples used by the README demo, the tutorials, tests and benchmarks."""
