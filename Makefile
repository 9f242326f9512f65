.PHONY: bench bench-quick

# The benchmark suite (benchmarks/README.md). Run it alone on the machine: the numbers are timings.
bench:
	python -m benchmarks

bench-quick:
	python -m benchmarks --quick
