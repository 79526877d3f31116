#!/usr/bin/env bash
# Bench smoke suite: `make bench` must keep working. Runs bench/bench.sh in
# SMOKE mode (tiny scale, 1 round, threads 1 and 2, every workload and real
# program once, the callgrind micro-benchmark with a small N) under glibc and
# keel, into a scratch folder so bench/results/ is untouched. Every workload
# checks its own results, so this also catches an allocator that corrupts
# memory under the benchmark patterns. Never asserts a speed. About 15-25 s.
# Release build only (the bench measures the release library).
source "$KEEL_ROOT/tests/lib.sh"
skip_unless_variant release
cd "$KEEL_ROOT" || exit 1
out=$KL_TMP/bench
mkdir -p "$out"
smoke() {
  SMOKE=1 ALLOCATORS="glibc keel" OUTDIR="$out" KBENCH_BIN="$out/bin" \
    KEEL_LIB="$KEEL_BUILD/libkeel.so" bash bench/bench.sh >"$out/log" 2>&1
  local rc=$?
  [ $rc -eq 0 ] || { tail -n 30 "$out/log"; return 1; }
}
t "bench smoke run (glibc, keel) exits 0" smoke
t "smoke report written" test -s "$out/smoke.md"
t "smoke chart is an SVG" grep -q '</svg>' "$out/smoke.svg"
t "report has every section" bash -c "grep -q '## Wall time' '$out/smoke.md' && grep -q '## Peak resident memory' '$out/smoke.md' && grep -q '## Fast path' '$out/smoke.md'"
for w in larson xmalloc false-sharing alloc-test sh8 tight large realloc memeff python gcc sqlite redis; do
  t "workload $w ran under both" bash -c "grep -E '^\\| $w(/[0-9]+t)? \\|' '$out/smoke.md' | head -1 | grep -vq FAIL && grep -qE '^\\| $w(/[0-9]+t)? \\|' '$out/smoke.md'"
done
t "fast-path counts present for keel" bash -c "grep '^| one pair at a time' '$out/smoke.md' | grep -qE '\\| [0-9.]+ \\|\$'"
t "unknown workload is refused" bash -c "! ONLY=nosuch OUTDIR='$out' KBENCH_BIN='$out/bin' KEEL_LIB='$KEEL_BUILD/libkeel.so' bash bench/bench.sh >/dev/null 2>&1"
finish
