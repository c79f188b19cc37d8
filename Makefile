# The two commands of the README. Each does its own setup (scripts/setup.sh is idempotent).
.PHONY: run test setup build

setup:
	@scripts/setup.sh

build: setup
	cmake --preset default
	cmake --build --preset default

# Main job: run hired_select on the bundled sample and explain its output.
run: build
	@scripts/run_sample.sh build/hired_select

test: build
	ctest --preset default
