#!/usr/bin/env bash
# Installs what building and testing l2norm needs on a Debian/Ubuntu machine, skipping whatever is
# already there. The CUDA toolkit is optional: without it the CPU backend builds alone.
set -euo pipefail

packages=()
need() { dpkg -s "$1" >/dev/null 2>&1 || packages+=("$1"); }
need cmake
need ninja-build
need g++
need libgtest-dev
need libbenchmark-dev
need clang
need python3-pip

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
if [ "${#packages[@]}" -gt 0 ]; then
  echo "setup: installing ${packages[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${packages[@]}"
fi

# numpy and pytest drive the CLI round-trip tests against files numpy writes.
if ! python3 -c 'import numpy, pytest' >/dev/null 2>&1; then
  echo "setup: installing numpy and pytest"
  python3 -m pip install -q numpy pytest || python3 -m pip install -q --break-system-packages numpy pytest
fi

if command -v nvcc >/dev/null 2>&1 || [ -d /usr/local/cuda ]; then
  echo "setup: CUDA toolkit found; the CUDA backend will be built"
else
  echo "setup: no CUDA toolkit; building the CPU backend only"
fi
