#!/usr/bin/env bash
# Builds l2norm with the CUDA backend on the GPU machine and runs the CUDA checks there:
#   bench/device_run.sh [build] [tests] [sanitize] [bench] [baseline] [python] [peers]
# (default: all but baseline and python). $TREE names the tree in the summary (e.g. a commit
# hash). Logs go to $OUT (or ./out): build.log, tests.log, sanitizer.log, bench.md, peers.md,
# python.log, summary.md.
# baseline: A/B against an older tree. $BASELINE names its source folder (e.g. made with
# `git archive REV | tar -x -C .ab/old` and carried); it is built beside this tree and its
# l2norm-bench runs after this tree's, then this tree's runs again, into baseline.md and
# bench_again.md, so both trees are measured twice in one run of the machine.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
BUILD=build/device
STAGES=${*:-build tests sanitize bench peers}
[[ " $STAGES " == *" baseline "* && -z "${BASELINE:-}" ]] && { echo "baseline needs \$BASELINE"; exit 2; }
SUMMARY=$OUT/summary.md
: > "$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }
has() { [[ " $STAGES " == *" $1 "* ]]; }
BIN=$BUILD/bin

note "# device run $(date -u +%FT%TZ): $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | head -1)"
note "tree: ${TREE:-not named (set TREE)}; $(nvcc --version 2>/dev/null | tail -1)"

if has build; then
  start=$SECONDS
  { cmake -G Ninja -S . -B $BUILD -DCMAKE_BUILD_TYPE=Release -DL2NORM_CUDA=ON \
      -DL2NORM_BUILD_BENCHMARKS=ON && ninja -C $BUILD
  } > "$OUT/build.log" 2>&1
  note "build: rc=$? in $((SECONDS - start)) s"
fi

if has tests; then
  # The whole suite (CPU, CUDA, CLI on the GPU, package consumers), one CTest entry per case.
  start=$SECONDS
  # $CTEST_EXCLUDE: a regex of tests to leave out (e.g. "CompilesFor": the compile-every-kernel
  # tests need no GPU, so a CPU machine can run them instead).
  (cd $BUILD && ctest -j ${CTEST_JOBS:-8} --output-on-failure --timeout ${CTEST_TIMEOUT:-600} \
      ${CTEST_EXCLUDE:+-E "$CTEST_EXCLUDE"}) > "$OUT/tests.log" 2>&1
  note "ctest: rc=$? in $((SECONDS - start)) s: $(grep -E 'tests passed' "$OUT/tests.log")${CTEST_EXCLUDE:+ (left out: $CTEST_EXCLUDE)}"
  grep -E "\(Failed\)|\(Timeout\)|Exception" "$OUT/tests.log" | tee -a "$SUMMARY"
fi

if has sanitize; then
  start=$SECONDS
  # Every GPU test but those over 2^31 elements (too slow under instrumentation), and the shared
  # op cases on cuda:0 ($SANITIZE_OPS_FILTER, default every op's), under all four tools. memcheck
  # runs first and alone, so its runs compile the kernels into the disk cache; racecheck,
  # initcheck and synccheck then run side by side on the cached kernels.
  GPU_TESTS='-*OverTwoToThe31*'
  OPS_TESTS=${SANITIZE_OPS_FILTER:-'*/cuda0:-*DimSweep.AllDTypesAndModesWithinBudget*'}
  sanitize() {  # tool binary filter limit
    timeout "$4" compute-sanitizer --tool "$1" --error-exitcode 9 "$BIN/$2" --gtest_filter="$3" \
      > "$OUT/sanitizer_$1_$2.log" 2>&1
    echo "sanitizer $1 ($2): rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' \
      "$OUT/sanitizer_$1_$2.log" | tail -1)" >> "$OUT/sanitizer_summary.log"
  }
  : > "$OUT/sanitizer_summary.log"
  sanitize memcheck l2norm_cuda_gpu_tests "$GPU_TESTS" 240 &
  sanitize memcheck l2norm_ops_tests "$OPS_TESTS" "${SANITIZE_LIMIT:-240}"
  wait
  for tool in racecheck initcheck synccheck; do
    sanitize $tool l2norm_cuda_gpu_tests "$GPU_TESTS" 240 &
    sanitize $tool l2norm_ops_tests "$OPS_TESTS" "${SANITIZE_LIMIT:-240}" &
  done
  wait
  cat "$OUT/sanitizer_summary.log" | tee -a "$SUMMARY"
  # One log for make_results.py: each tool's summary lines, then the logs themselves.
  for log in "$OUT"/sanitizer_*_*.log; do
    echo "=== $(basename "$log" .log)"
    cat "$log"
  done > "$OUT/sanitizer.log"
  rm -f "$OUT"/sanitizer_*_*.log
  note "sanitizers took $((SECONDS - start)) s"
fi

if has bench; then
  timeout 300 $BIN/l2norm-bench > "$OUT/bench.md" 2>&1
  note "bench: rc=$?"
  cat "$OUT/bench.md"
fi

if has baseline; then
  start=$SECONDS
  { cmake -G Ninja -S "$BASELINE" -B build/baseline -DCMAKE_BUILD_TYPE=Release -DL2NORM_CUDA=ON \
      -DL2NORM_BUILD_BENCHMARKS=ON -DL2NORM_BUILD_TESTS=OFF && ninja -C build/baseline l2norm-bench
  } > build/baseline_build.log 2>&1
  note "baseline build ($BASELINE): rc=$? in $((SECONDS - start)) s (log: build/baseline_build.log)"
  timeout 300 build/baseline/bin/l2norm-bench > "$OUT/baseline.md" 2>&1
  note "baseline bench: rc=$?"
  timeout 300 $BIN/l2norm-bench > "$OUT/bench_again.md" 2>&1
  note "bench again: rc=$?"
fi

if has python; then
  # The Python package built with what the machine has (no package registry there), then its
  # tests, whose CUDA halves run here.
  start=$SECONDS
  { python3 -m pip install --no-build-isolation --no-deps -q . &&
      (cd python_tests && PYTHONUNBUFFERED=1 timeout 400 python3 -m pytest -q -p no:cacheprovider \
        -rs test_python_*.py)
  } > "$OUT/python.log" 2>&1
  note "python: rc=$? in $((SECONDS - start)) s: $(grep -E '(passed|failed|error)' "$OUT/python.log" | tail -1)"
fi

if has peers; then
  # l2norm's Python package (installed by the python stage, else the build tree's module) and its
  # peers, forward and backward; flash-linear-attention from $L2NORM_FLA_PATH, .carry/fla or .ab/fla
  # (bench/fetch_fla.sh fills one). Then the CPU table on NumPy arrays.
  # $PEERS_SHAPES: peers.py's --shapes (default: its whole list).
  PYTHONUNBUFFERED=1 timeout ${PEERS_TIMEOUT:-900} python3 bench/peers.py \
    ${PEERS_SHAPES:+--shapes "$PEERS_SHAPES"} > "$OUT/peers.md" 2>&1
  note "peers: rc=$?"
  if [[ "${PEERS_CPU:-1}" == 1 ]]; then  # PEERS_CPU=0 leaves the CPU table to the CPU machine
    PYTHONUNBUFFERED=1 timeout 300 python3 bench/peers.py --cpu >> "$OUT/peers.md" 2>&1
    note "peers --cpu: rc=$?"
  fi
  cat "$OUT/peers.md"
fi
cat "$SUMMARY"
