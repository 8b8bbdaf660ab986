#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds procpool's libFuzzer targets (fuzz/) with clang, ASan and UBSan in
# build-fuzz/, and runs each for a bounded time from its committed seed
# corpus. Exits non-zero if any target finds a crash, a leak, undefined
# behaviour or a timeout; the reproducer stays in build-fuzz/findings/, never
# in the repository, and its path is printed.
#   tools/fuzz.sh [seconds per target, default 60]
# Environment: FUZZ_JOBS (build parallelism, default 2), FUZZ_TARGETS (a
# subset, space-separated).
set -euo pipefail
seconds="${1:-60}"
case "$seconds" in ''|*[!0-9]*) echo "usage: $0 [seconds]" >&2; exit 2 ;; esac
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build-fuzz"
targets=(${FUZZ_TARGETS:-fuzz_response_reader fuzz_call_decoder fuzz_decode_exception})

stage_start=$SECONDS
stage() {
  echo "fuzz.sh: $1 took $((SECONDS - stage_start)) s" >&2
  stage_start=$SECONDS
}

"$root/tools/install-deps.sh" --fuzz
stage "install-deps --fuzz"

CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DPROCPOOL_BUILD_FUZZ=ON -DPROCPOOL_BUILD_TESTS=OFF \
  -DPROCPOOL_BUILD_EXAMPLES=OFF -DPROCPOOL_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j"${FUZZ_JOBS:-2}" --target "${targets[@]}"
stage "build"

failed=()
for target in "${targets[@]}"; do
  # The corpus grows in the build directory (libFuzzer writes what it finds
  # to the first directory); the committed seeds are only read.
  corpus="$build/corpus/$target"
  findings="$build/findings/$target"
  mkdir -p "$corpus" "$findings"
  log="$build/findings/$target.log"
  set +e
  (cd "$findings" && "$build/fuzz/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
     -print_final_stats=1 -artifact_prefix="$findings/" "$corpus" "$root/fuzz/corpus/$target" >"$log" 2>&1)
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  if [ $rc -ne 0 ]; then
    failed+=("$target")
    echo "fuzz.sh: $target FAILED (exit $rc); log $log" >&2
    grep -E "^(==[0-9]+==ERROR|SUMMARY|.*runtime error)" "$log" | head -5 >&2 || true
    ls "$findings"/crash-* "$findings"/leak-* "$findings"/timeout-* "$findings"/oom-* 2>/dev/null >&2 || true
  else
    echo "fuzz.sh: $target clean: ${execs:-?} inputs, ${rate:-?} exec/s" >&2
  fi
  stage "$target"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: findings in ${failed[*]}" >&2
  exit 1
fi
echo "fuzz.sh: all ${#targets[@]} targets clean for $seconds s each" >&2
