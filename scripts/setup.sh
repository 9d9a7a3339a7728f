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
need python3-dev   # Python.h, for the l2norm Python module
need python3-venv  # the packaging test installs the wheel into a fresh virtual environment

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
if [ "${#packages[@]}" -gt 0 ]; then
  echo "setup: installing ${packages[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${packages[@]}"
fi

pip_install() {
  python3 -m pip install -q "$@" || python3 -m pip install -q --break-system-packages "$@"
}

# numpy and pytest drive the CLI round-trip tests against files numpy writes, and the Python tests.
if ! python3 -c 'import numpy, pytest' >/dev/null 2>&1; then
  echo "setup: installing numpy and pytest"
  pip_install numpy pytest
fi

# The Python package: nanobind and scikit-build-core build it (CMake builds the module when nanobind
# is found), build makes the sdist; ml_dtypes, dask and distributed, torch are what its tests use.
# torch from PyPI brings CUDA runtime wheels (about 4 GiB, two minutes here); L2NORM_SETUP_TORCH=0
# leaves it out and the PyTorch tests are then reported skipped.
python_packages=()
python_need() { python3 -c "import $1" >/dev/null 2>&1 || python_packages+=("$2"); }
python_need nanobind "nanobind>=2.0"
python_need scikit_build_core "scikit-build-core>=0.10"
python_need build build
python_need ml_dtypes ml_dtypes
python_need dask.array "dask[array]"
python_need distributed distributed
if [ "${L2NORM_SETUP_TORCH:-1}" != 0 ]; then python_need torch torch; fi
if [ "${#python_packages[@]}" -gt 0 ]; then
  echo "setup: installing ${python_packages[*]}"
  pip_install "${python_packages[@]}"
fi

if command -v nvcc >/dev/null 2>&1 || [ -d /usr/local/cuda ]; then
  echo "setup: CUDA toolkit found; the CUDA backend will be built"
else
  echo "setup: no CUDA toolkit; building the CPU backend only"
fi
