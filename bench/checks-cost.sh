#!/usr/bin/env bash
# What keel's safety costs: the default build against the same sources with
# the free() checks compiled out (-DKEEL_CHECKS=OFF), and the secure and debug
# builds, on the self-checking workloads of bench/workloads.c. Variants
# alternate within each round; medians of user+sys seconds; ratio to default.
# Usage: bash bench/checks-cost.sh [rounds]   (run `make bench` once first, or
# it builds the workloads itself). Prints a markdown table.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd); cd "$root"
rounds=${1:-5}
bin=$root/build-bench
[ -x "$bin/kbench" ] && [ -x "$bin/kbrun" ] || {
  mkdir -p "$bin"
  gcc -O2 -std=gnu11 -pthread bench/workloads.c -o "$bin/kbench"
  gcc -O2 bench/runner.c -o "$bin/kbrun"
}
cmake -S . -B build-nochecks -DCMAKE_BUILD_TYPE=Release -DKEEL_CHECKS=OFF >/dev/null
cmake --build build-nochecks -j2 --target keel >/dev/null
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cp build/libkeel.so.1.0.0 "$tmp/default.so"; cp build-nochecks/libkeel.so.1.0.0 "$tmp/nochecks.so"
cp build/libkeel-secure.so.1.0.0 "$tmp/secure.so"; cp build/libkeel-debug.so.1.0.0 "$tmp/debug.so"
variants="default nochecks secure debug"
workloads="alloc-test:1:40 alloc-test:2:40 sh8:1:40 tight:1:40 larson:2:60 xmalloc:2:40 false-sharing:2:40 realloc:1:40"
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "| workload | default (s) | checks off | secure | debug |"
echo "|---|---:|---:|---:|---:|"
for w in $workloads; do
  IFS=: read -r name threads scale <<<"$w"
  for v in $variants; do : > "$tmp/$v.times"; done
  for r in $(seq "$rounds"); do
    for v in $variants; do
      "$bin/kbrun" "$tmp/res" "$tmp/$v.so" "$bin/kbench" "$name" "$threads" "$scale" >/dev/null 2>&1 || echo "FAIL $v $w" >&2
      awk '{print $2}' "$tmp/res" >> "$tmp/$v.times"
    done
  done
  d=$(median < "$tmp/default.times")
  row="| $name/${threads}t | $d"
  for v in nochecks secure debug; do
    m=$(median < "$tmp/$v.times")
    row="$row | $m ($(awk "BEGIN{printf \"%.2f\", $m/$d}")x)"
  done
  echo "$row |"
done
