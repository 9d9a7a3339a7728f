#!/bin/sh
# Runs each libFuzzer target for a bounded time on a copy of its seed corpus.
#   fuzz/run.sh BUILD_DIR SECONDS
# BUILD_DIR was configured with -DL2NORM_BUILD_FUZZERS=ON and clang. Exits non-zero on the first
# target that finds a crash, a sanitizer report, or an allocation over the limit; the
# reproducer is left in the working folder it prints.
set -eu

if [ "$#" -ne 2 ]; then
  echo "usage: $0 BUILD_DIR SECONDS" >&2
  exit 2
fi
build_dir=$(cd "$1" && pwd)
seconds=$2
source_dir=$(cd "$(dirname "$0")" && pwd)
work_dir=$(mktemp -d "${TMPDIR:-/tmp}/l2norm_fuzz.XXXXXX")
echo "fuzz working folder: $work_dir"

for format in npy fvecs; do
  binary="$build_dir/bin/l2norm_fuzz_$format"
  [ -x "$binary" ] || binary="$build_dir/fuzz/l2norm_fuzz_$format"
  if [ ! -x "$binary" ]; then
    echo "missing $binary (configure with -DL2NORM_BUILD_FUZZERS=ON and clang)" >&2
    exit 2
  fi
  corpus="$work_dir/corpus_$format"
  mkdir -p "$corpus"
  cp "$source_dir/corpus/$format/"* "$corpus/"
  echo "== $format: ${seconds}s"
  # Any single allocation over 64 MiB is a finding: the readers must not trust sizes in a file.
  (cd "$work_dir" && "$binary" "$corpus" -max_total_time="$seconds" -max_len=65536 \
      -malloc_limit_mb=64 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1)
done
rm -rf "$work_dir"
echo "fuzzing finished without findings"
