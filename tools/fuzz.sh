#!/usr/bin/env bash
# `make fuzz`: libFuzzer on tests/fuzz/fuzz_api.c (keel's whole keel_* API
# against a shadow model, two threads) for FUZZ_SECONDS (default 600), on a
# build of keel's sources with coverage, ASan, UBSan and the checked build's
# assertions. The working corpus is build-rel-fuzz/corpus (kept between
# runs; seeded from tests/fuzz/corpus). A crash leaves its input in
# build-rel-fuzz/crash-*; replay it with
#   FUZZ_TRACE=1 build-rel-fuzz/fuzz_api build-rel-fuzz/crash-...
# and copy it into tests/fuzz/corpus/ once fixed, as a regression seed.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
export KEEL_ROOT=$root
source "$root/tests/reliability/build.sh"
d=$root/build-rel-fuzz
command -v clang >/dev/null || { echo "fuzz: clang is needed (tools/deps/test-reliability.txt)"; exit 1; }
rel_build_fuzzer "$d" || { echo "fuzz: build failed"; exit 1; }
mkdir -p "$d/corpus"
secs=${FUZZ_SECONDS:-600}
echo "fuzz: $secs s, corpus $d/corpus + tests/fuzz/corpus"
"$d/fuzz_api" -max_total_time="$secs" -timeout=20 -rss_limit_mb=3072 -print_final_stats=1 \
  -artifact_prefix="$d/" "$d/corpus" "$root/tests/fuzz/corpus"
rc=$?
if [ $rc -eq 0 ]; then echo "fuzz: no failure in $secs s ($(ls "$d/corpus" | wc -l) inputs in the working corpus)"
else echo "fuzz: FAILED (exit $rc); reproducer: $(ls -t "$d"/crash-* "$d"/timeout-* "$d"/oom-* 2>/dev/null | head -n 1)"; fi
exit $rc
