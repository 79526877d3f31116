#!/usr/bin/env bash
# Bench smoke suite: `make bench` must keep working. Runs bench/bench.sh in
# SMOKE mode (tiny scale, 1 round, threads 1 and 2, every workload and real
# program once, the callgrind micro-benchmark with a small N) under glibc and
# keel, into a scratch folder so bench/results/ is untouched. Every workload
# checks its own results, so this also catches an allocator that corrupts
# memory under the benchmark patterns. Never asserts a speed. Then the two
# side benchmarks in their SMOKE mode: bench/checks-cost.sh (default,
# checks-off, secure and debug libraries; the checks-off build is cached in
# build-nochecks/) and bench/heaps/run.sh. About 25-35 s.
# Release build only (the bench measures the release library).
source "$KEEL_ROOT/tests/lib.sh"
skip_unless_variant release
cd "$KEEL_ROOT" || exit 1
out=$KL_TMP/bench
mkdir -p "$out"
results_sum() { cat bench/RESULTS.md 2>/dev/null | md5sum; }
results_before=$(results_sum)
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
t "fast-path counts present for keel" bash -c "grep -E '^\\| (one malloc\\(32\\)/free pair at a time|batches of 1,000)' '$out/smoke.md' | grep -cE '\\| [0-9.]+ \\|\$' | grep -qx 2"
t "unknown workload is refused" bash -c "! ONLY=nosuch OUTDIR='$out' KBENCH_BIN='$out/bin' KEEL_LIB='$KEEL_BUILD/libkeel.so' bash bench/bench.sh >/dev/null 2>&1"

# ---- the side benchmarks, SMOKE mode: exit 0 and a full table ----------
side() {  # name, command...: run it, output in $out/NAME.md and .err
  local name=$1; shift
  "$@" >"$out/$name.md" 2>"$out/$name.err" || { cat "$out/$name.md"; tail -n 30 "$out/$name.err"; return 1; }
}
num='[0-9]+\.[0-9]+'
table() {  # name, header, rows, row regex: the header, that many rows, no FAIL
  local f=$out/$1.md
  grep -qxF "$2" "$f" && [ "$(grep -cE "$4" "$f")" -eq "$3" ] && ! grep -q FAIL "$f" "$out/$1.err" || { cat "$f"; return 1; }
}
t "checks-cost.sh SMOKE=1 exits 0" side checks-cost env SMOKE=1 KEEL_BUILD="$KEEL_BUILD" KBENCH_BIN="$out/bin" \
  NOCHECKS_BUILD="$KEEL_ROOT/build-nochecks" bash bench/checks-cost.sh
t "checks-cost table: 8 workloads, a time and 3 ratios each" table checks-cost \
  '| workload | default (s) | checks off | secure | debug |' 8 "^\| [a-z0-9-]+/[12]t \| $num( \| $num \(${num}x\)){3} \|\$"
t "heaps/run.sh SMOKE=1 exits 0" side heaps env SMOKE=1 KEEL_LIB="$KEEL_BUILD/libkeel.so" KBENCH_BIN="$out/bin" \
  bash bench/heaps/run.sh
t "heaps table: 6 allocators, time, ratio and RSS each" table heaps \
  '| allocator | user+sys (s) | vs keel heap | peak RSS (MiB) |' 6 "^\| [^|]+ \| $num \| ${num}x \| $num \|\$"
t "bench/RESULTS.md untouched by the smoke runs" test "$(results_sum)" = "$results_before"
finish
