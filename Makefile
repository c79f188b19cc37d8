# The two commands of the README. Each does its own setup (scripts/setup.sh is idempotent).
.PHONY: run test setup configure

setup:
	@scripts/setup.sh

configure: setup
	cmake --preset default

# Main job: run hired_select on the bundled sample and explain its output.
run: configure
	cmake --build --preset default --target hired_select
	@scripts/run_sample.sh build/hired_select

# Everything: build all targets, then every test (ends with CTest's summary).
test: configure
	cmake --build --preset default
	ctest --preset default
