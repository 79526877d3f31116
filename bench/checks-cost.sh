#!/usr/bin/env bash
# What keel's safety costs: the default build against the same sources with
# the free() checks compiled out (-DKEEL_CHECKS=OFF), and the secure and debug
# builds, on the self-checking workloads of bench/workloads.c. Variants
# alternate within each round; medians of user+sys seconds; ratio to default.
# Usage: bash bench/checks-cost.sh [rounds]   (run `make bench` once first, or
# it builds the workloads itself). Prints a markdown table; exits 1 if any
# run failed (its cell reads FAIL). Writes no file outside its build folders.
# Env: SMOKE=1 (one round at scale 1, a few seconds: `make test` runs it),
# KEEL_BUILD (the build with the three libraries, default build/),
# KBENCH_BIN (the workload binaries, default build-bench/), NOCHECKS_BUILD
# (where the -DKEEL_CHECKS=OFF build goes, default build-nochecks/).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd); cd "$root"
rounds=${1:-5}
[ -n "${SMOKE:-}" ] && rounds=1
build=${KEEL_BUILD:-$root/build}
nochecks=${NOCHECKS_BUILD:-$root/build-nochecks}
bin=${KBENCH_BIN:-$root/build-bench}
[ -x "$bin/kbench" ] && [ -x "$bin/kbrun" ] || {
  mkdir -p "$bin"
  gcc -O2 -std=gnu11 -pthread bench/workloads.c -o "$bin/kbench"
  gcc -O2 bench/runner.c -o "$bin/kbrun"
}
cmake -S . -B "$nochecks" -DCMAKE_BUILD_TYPE=Release -DKEEL_CHECKS=OFF >/dev/null
cmake --build "$nochecks" -j "$(nproc)" --target keel >/dev/null
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cp "$build/libkeel.so.1.0.0" "$tmp/default.so"; cp "$nochecks/libkeel.so.1.0.0" "$tmp/nochecks.so"
cp "$build/libkeel-secure.so.1.0.0" "$tmp/secure.so"; cp "$build/libkeel-debug.so.1.0.0" "$tmp/debug.so"
variants="default nochecks secure debug"
workloads="alloc-test:1:40 alloc-test:2:40 sh8:1:40 tight:1:40 larson:2:60 xmalloc:2:40 false-sharing:2:40 realloc:1:40"
[ -n "${SMOKE:-}" ] && workloads=$(echo "$workloads" | sed -E 's/:[0-9]+( |$)/:1\1/g')
failed=0
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "| workload | default (s) | checks off | secure | debug |"
echo "|---|---:|---:|---:|---:|"
for w in $workloads; do
  IFS=: read -r name threads scale <<<"$w"
  for v in $variants; do : > "$tmp/$v.times"; done
  for r in $(seq "$rounds"); do
    for v in $variants; do
      if "$bin/kbrun" "$tmp/res" "$tmp/$v.so" "$bin/kbench" "$name" "$threads" "$scale" >/dev/null 2>&1; then
        awk '{print $2}' "$tmp/res" >> "$tmp/$v.times"
      else echo "FAIL $v $w" >&2; failed=1; fi
    done
  done
  d=$(median < "$tmp/default.times")
  row="| $name/${threads}t | ${d:-FAIL}"
  for v in nochecks secure debug; do
    m=$(median < "$tmp/$v.times")
    if [ -z "$m" ]; then row="$row | FAIL"
    elif [ -z "$d" ] || awk "BEGIN{exit !($d == 0)}"; then row="$row | $m"   # no ratio to a failed or 0 s default
    else row="$row | $m ($(awk "BEGIN{printf \"%.2f\", $m/$d}")x)"; fi
  done
  echo "$row |"
done
exit $failed
