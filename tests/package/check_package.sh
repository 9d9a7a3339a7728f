#!/usr/bin/env bash
# Installs the built library into a scratch prefix, then builds and runs a consumer project with
# find_package(l2norm) (mode "install") or add_subdirectory(l2norm) (mode "subdirectory").
# Extra arguments are passed to the consumer's configure step (e.g. sanitizer link flags).
set -euo pipefail
build_dir=$1
source_dir=$2
mode=$3
shift 3
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
log=$scratch/log
run() { "$@" >>"$log" 2>&1 || { cat "$log"; echo "failed: $*"; exit 1; }; }
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ "$mode" = install ]; then
  run cmake --install "$build_dir" --prefix "$scratch/prefix"
  run cmake -S "$source_dir/tests/package/consumer" -B "$scratch/consumer" "${generator[@]}" \
    -DCMAKE_PREFIX_PATH="$scratch/prefix" -DCMAKE_BUILD_TYPE=Release "$@"
else
  run cmake -S "$source_dir/tests/package/consumer" -B "$scratch/consumer" "${generator[@]}" \
    -DL2NORM_SOURCE_DIR="$source_dir" -DCMAKE_BUILD_TYPE=Release "$@"
fi
run cmake --build "$scratch/consumer" -j 2
"$scratch/consumer/consumer"
