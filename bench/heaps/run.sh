#!/usr/bin/env bash
# Heap workload (issue 10): build and drop JSON-like trees with malloc/free
# per node on every allocator, and with one keel heap per tree destroyed
# whole; alternating runs, medians of user+sys seconds and peak RSS.
#   bash bench/heaps/run.sh [rounds] [trees] [nodes]   -> markdown on stdout
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd); cd "$root"
rounds=${1:-5}; trees=${2:-2000}; nodes=${3:-5000}
bin=$root/build-bench; mkdir -p "$bin"
gcc -O2 -std=gnu11 -Iinclude bench/heaps/trees.c -o "$bin/trees" -ldl
[ -x "$bin/kbrun" ] || gcc -O2 bench/runner.c -o "$bin/kbrun"
lib() { case $1 in glibc) echo "";; keel|keel-heap) echo "$root/build/libkeel.so";;
  *) ldconfig -p | awk -v n="lib$1" '$1 ~ "^"n {print $NF; exit}';; esac; }
names="glibc mimalloc jemalloc tcmalloc keel keel-heap"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for r in $(seq "$rounds"); do
  for a in $names; do
    l=$(lib $a); [ $a = tcmalloc ] && l=$(ldconfig -p | awk '$1 ~ /^libtcmalloc_minimal.so/ {print $NF; exit}')
    mode=malloc; [ $a = keel-heap ] && mode=heap
    "$bin/kbrun" "$tmp/res" "$l" "$bin/trees" $mode "$trees" "$nodes" > "$tmp/out" || { echo "FAIL $a" >&2; cat "$tmp/out" >&2; }
    read -r wall cpu rss code < "$tmp/res"
    echo "$cpu" >> "$tmp/$a.cpu"; echo "$rss" >> "$tmp/$a.rss"
  done
done
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
k=$(median < "$tmp/keel-heap.cpu")
echo "| allocator | user+sys (s) | vs keel heap | peak RSS (MiB) |"
echo "|---|---:|---:|---:|"
for a in $names; do
  c=$(median < "$tmp/$a.cpu"); m=$(median < "$tmp/$a.rss")
  label=$a; [ $a = keel-heap ] && label="keel, heap per tree (keel_heap_destroy)"; [ $a = keel ] && label="keel, malloc/free"
  printf '| %s | %s | %.2fx | %.1f |\n' "$label" "$c" "$(awk "BEGIN{print $c/$k}")" "$(awk "BEGIN{print $m/1024}")"
done
