#!/usr/bin/env bash
# Fills DIR (default .carry/fla) with flash-linear-attention's Python package (fla-core, Python and
# Triton only) and einops, unpacked so that bench/peers.py finds them there on a machine without a
# package registry (carry the folder along):  bench/fetch_fla.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.carry/fla}
mkdir -p "$DIR"
WHEELS=$(mktemp -d)
trap 'rm -rf "$WHEELS"' EXIT
python3 -m pip download --no-deps -q -d "$WHEELS" fla-core einops
for wheel in "$WHEELS"/*.whl; do
  python3 -m zipfile -e "$wheel" "$DIR"
done
echo "fla and einops unpacked into $DIR (bench/peers.py looks in .carry/fla, .ab/fla, \$L2NORM_FLA_PATH)"
