#!/usr/bin/env bash
# Entry point of the workspace's images: give the command the workspace (env.sh: the venv, the ROS 2
# libraries, the ament index, the Fast DDS profile, the colcon install), put the CUDA, cuDNN and TensorRT
# libraries of NVIDIA's pip wheels on the library path, then exec the command (the image's CMD by default).
set -eo pipefail

# The workspace root is this script's parent directory (/ws in the images).
# shellcheck source=/dev/null
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/env.sh"

# torch locates the CUDA libraries of its wheels itself; onnxruntime's CUDA and TensorRT providers and
# TensorRT's plugins are loaded with dlopen and need the directories on the library path.
# (nvidia/<component>/lib, nvidia/cu13/lib; tensorrt_libs or tensorrt_cu13_libs, by TensorRT release).
for dir in "$VIRTUAL_ENV"/lib/python3.*/site-packages/nvidia/*/lib \
           "$VIRTUAL_ENV"/lib/python3.*/site-packages/tensorrt*_libs; do
  if [ -d "$dir" ]; then
    LD_LIBRARY_PATH="$dir:$LD_LIBRARY_PATH"
  fi
done
export LD_LIBRARY_PATH

if [ "$#" -eq 0 ]; then
  echo "entrypoint.sh: no command given; for example: vla up sim" >&2
  exit 2
fi
exec "$@"
