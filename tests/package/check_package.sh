#!/usr/bin/env bash
# Installs the built library into a scratch prefix, then builds and runs a consumer project with
# find_package(l2norm) and another with add_subdirectory(l2norm).
set -euo pipefail
build_dir=$1
source_dir=$2
mode=$3
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ "$mode" = install ]; then
  cmake --install "$build_dir" --prefix "$scratch/prefix" >/dev/null
  cmake -S "$source_dir/tests/package/consumer" -B "$scratch/consumer" "${generator[@]}" \
    -DCMAKE_PREFIX_PATH="$scratch/prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
else
  cmake -S "$source_dir/tests/package/consumer" -B "$scratch/consumer" "${generator[@]}" \
    -DL2NORM_SOURCE_DIR="$source_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$scratch/consumer" -j 2 >/dev/null
"$scratch/consumer/consumer"
