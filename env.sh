# Source this file (bash or zsh) to give a shell the workspace: `source env.sh`.
# Sets the library path for the ROS 2 wheels, the ament index, localhost-only discovery and the Fast DDS
# profile that carries camera images (shared memory + UDP), then overlays the built workspace.
# ROS 2 Kilted (.venv, install/) by default; `VLA_ROS_DISTRO=jazzy source env.sh` for the Jazzy set that
# `make setup VLA_ROS_DISTRO=jazzy` made (.venv-jazzy, install-jazzy/).
if [ -n "${BASH_SOURCE[0]:-}" ]; then _vla_ws=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
else _vla_ws=$(cd "$(dirname "$0")" && pwd); fi
case "${VLA_ROS_DISTRO:-kilted}" in
  kilted) _vla_sfx="" ;;
  jazzy) _vla_sfx="-jazzy" ;;
  *) echo "env.sh: VLA_ROS_DISTRO=$VLA_ROS_DISTRO is not supported: use kilted (the default) or jazzy." >&2
     return 1 2>/dev/null || exit 1 ;;
esac
_vla_venv=${VLA_VENV:-$_vla_ws/.venv$_vla_sfx}
if [ ! -x "$_vla_venv/bin/python" ]; then
  echo "env.sh: no virtual environment at $_vla_venv; run 'make setup${_vla_sfx:+ VLA_ROS_DISTRO=jazzy}' (or scripts/setup.sh) first." >&2
  return 1 2>/dev/null || exit 1
fi
export VLA_WS=$_vla_ws
export VLA_ROS_DISTRO=${VLA_ROS_DISTRO:-kilted}
export VIRTUAL_ENV=$_vla_venv
case ":$PATH:" in *":$_vla_venv/bin:"*) ;; *) export PATH="$_vla_venv/bin:$PATH" ;; esac
case ":${LD_LIBRARY_PATH:-}:" in *":$_vla_venv/lib:"*) ;;
  *) export LD_LIBRARY_PATH="$_vla_venv/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;; esac
case ":${AMENT_PREFIX_PATH:-}:" in *":$_vla_venv:"*) ;;
  *) export AMENT_PREFIX_PATH="$_vla_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;; esac
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
export FASTDDS_DEFAULT_PROFILES_FILE=${FASTDDS_DEFAULT_PROFILES_FILE:-$_vla_ws/params/fastdds.xml}
# Headless rendering for simulators that use SDL or MuJoCo.
export SDL_VIDEODRIVER=${SDL_VIDEODRIVER:-dummy}
export MUJOCO_GL=${MUJOCO_GL:-egl}
if [ -f "$_vla_ws/install$_vla_sfx/local_setup.bash" ] && [ -n "${BASH_VERSION:-}" ]; then
  # shellcheck disable=SC1090
  . "$_vla_ws/install$_vla_sfx/local_setup.bash"
elif [ -f "$_vla_ws/install$_vla_sfx/local_setup.zsh" ] && [ -n "${ZSH_VERSION:-}" ]; then
  . "$_vla_ws/install$_vla_sfx/local_setup.zsh"
fi
unset _vla_ws _vla_venv _vla_sfx
