#!/usr/bin/env bash
# Run every test of the workspace: each package's unit tests and the workspace-level multi-process tests.
# Tests run against the built workspace (`source env.sh` first; `make test` does both).
set -euo pipefail
WS=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$WS"
if [ -z "${VLA_WS:-}" ]; then
  echo "scripts/test.sh: source env.sh first (or run 'make test')" >&2
  exit 2
fi
# A private ROS domain per run keeps concurrent runs (and a running demo) from seeing each other.
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 1 ))}
echo "[test] ROS 2 ${VLA_ROS_DISTRO:-kilted}, $(python -V 2>&1), ROS_DOMAIN_ID $ROS_DOMAIN_ID"
exec python -m pytest "$@"
