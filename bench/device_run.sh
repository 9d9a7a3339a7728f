#!/usr/bin/env bash
# Builds l2norm with the CUDA backend on the GPU machine and runs the CUDA checks there:
#   bench/device_run.sh [build] [tests] [sanitize] [bench] [peers]     (default: all of them)
# Logs go to $OUT (or ./out): build.log, tests.log, sanitizer.log, bench.md, peers.md, summary.md.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
BUILD=build/device
STAGES=${*:-build tests sanitize bench peers}
SUMMARY=$OUT/summary.md
: > "$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }
has() { [[ " $STAGES " == *" $1 "* ]]; }
BIN=$BUILD/bin

note "# device run $(date -u +%FT%TZ): $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | head -1)"

if has build; then
  start=$SECONDS
  { cmake -G Ninja -S . -B $BUILD -DCMAKE_BUILD_TYPE=Release -DL2NORM_CUDA=ON \
      -DL2NORM_BUILD_TOOLS=OFF -DL2NORM_BUILD_BENCHMARKS=ON &&
    ninja -C $BUILD l2norm_cuda_gpu_tests l2norm_cuda_compile_tests l2norm_ops_tests l2norm-bench
  } > "$OUT/build.log" 2>&1
  note "build: rc=$? in $((SECONDS - start)) s"
fi

if has tests; then
  start=$SECONDS
  {
    $BIN/l2norm_cuda_gpu_tests
    echo "rc=$?"
    $BIN/l2norm_ops_tests
    echo "rc=$?"
    $BIN/l2norm_cuda_compile_tests
    echo "rc=$?"
  } > "$OUT/tests.log" 2>&1
  note "tests ($((SECONDS - start)) s):"
  grep -E "^\[  (PASSED|FAILED|SKIPPED) \]|^rc=|tests? from .* ran" "$OUT/tests.log" | tee -a "$SUMMARY"
fi

if has sanitize; then
  start=$SECONDS
  SUBSET='CudaEncoder.RecordsOnTheCallersStream:CudaEncoder.GraphCaptureAndReplayAfterPrewarm:CudaNumerics.MisalignedPointersOneToSevenElements:CudaNumerics.OnChipSplitRowsDoNotDependOnTheRowCount'
  for tool in memcheck racecheck initcheck synccheck; do
    echo "=== $tool" >> "$OUT/sanitizer.log"
    timeout 150 compute-sanitizer --tool $tool --error-exitcode 9 \
      $BIN/l2norm_cuda_gpu_tests --gtest_filter="$SUBSET" >> "$OUT/sanitizer.log" 2>&1
    rc=$?
    note "sanitizer $tool: rc=$rc $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer.log" | tail -1)"
  done
  note "sanitizers took $((SECONDS - start)) s"
fi

if has bench; then
  timeout 300 $BIN/l2norm-bench > "$OUT/bench.md" 2>&1
  note "bench: rc=$?"
  cat "$OUT/bench.md"
fi

if has peers; then
  PYTHONUNBUFFERED=1 timeout 400 python3 bench/peers.py > "$OUT/peers.md" 2>&1
  note "peers: rc=$?"
  cat "$OUT/peers.md"
fi
cat "$SUMMARY"
