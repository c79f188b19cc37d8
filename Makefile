# The two commands of the README. Each does its own setup (scripts/setup.sh is idempotent).
.PHONY: run test setup configure select-demo

setup:
	@scripts/setup.sh

configure: setup
	cmake --preset default

# Main job: the paper's measurement on the mini preset (CPU), explained (README "Benchmark").
run: configure
	cmake --build --preset default --target hired_bench
	build/benchmarks/hired_bench

# Everything: build all targets, then every test (ends with CTest's summary).
test: configure
	cmake --build --preset default
	ctest --preset default

# hired_select on the bundled CLS-attention sample: how each mode splits a 20% budget.
select-demo: configure
	cmake --build --preset default --target hired_select
	@scripts/run_sample.sh build/hired_select
