#!/usr/bin/env bash
# Heap workload (issue 10): build and drop JSON-like trees with malloc/free
# per node on every allocator, and with one keel heap per tree destroyed
# whole; alternating runs, medians of user+sys seconds and peak RSS.
#   bash bench/heaps/run.sh [rounds] [trees] [nodes]   -> markdown on stdout
# Exits 1 if any run failed (its row reads FAIL). Writes no file outside
# its build folder. Env: SMOKE=1 (1 round of 20 trees of 500 nodes, about
# a second: `make test` runs it), KEEL_LIB (keel's library, default
# build/libkeel.so), KBENCH_BIN (binaries, default build-bench/).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd); cd "$root"
rounds=${1:-5}; trees=${2:-2000}; nodes=${3:-5000}
[ -n "${SMOKE:-}" ] && { rounds=1; trees=20; nodes=500; }
keel_lib=${KEEL_LIB:-$root/build/libkeel.so}
bin=${KBENCH_BIN:-$root/build-bench}; mkdir -p "$bin"
gcc -O2 -std=gnu11 -Iinclude bench/heaps/trees.c -o "$bin/trees" -ldl
[ -x "$bin/kbrun" ] || gcc -O2 bench/runner.c -o "$bin/kbrun"
lib() { case $1 in glibc) echo "";; keel|keel-heap) echo "$keel_lib";;
  *) ldconfig -p | awk -v n="lib$1" '$1 ~ "^"n {print $NF; exit}';; esac; }
names="glibc mimalloc jemalloc tcmalloc keel keel-heap"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
failed=0
for a in $names; do : > "$tmp/$a.cpu"; : > "$tmp/$a.rss"; done
for r in $(seq "$rounds"); do
  for a in $names; do
    l=$(lib $a); [ $a = tcmalloc ] && l=$(ldconfig -p | awk '$1 ~ /^libtcmalloc_minimal.so/ {print $NF; exit}')
    mode=malloc; [ $a = keel-heap ] && mode=heap
    if "$bin/kbrun" "$tmp/res" "$l" "$bin/trees" $mode "$trees" "$nodes" > "$tmp/out"; then
      read -r wall cpu rss code < "$tmp/res"
      echo "$cpu" >> "$tmp/$a.cpu"; echo "$rss" >> "$tmp/$a.rss"
    else echo "FAIL $a" >&2; cat "$tmp/out" >&2; failed=1; fi
  done
done
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
k=$(median < "$tmp/keel-heap.cpu")
echo "| allocator | user+sys (s) | vs keel heap | peak RSS (MiB) |"
echo "|---|---:|---:|---:|"
for a in $names; do
  c=$(median < "$tmp/$a.cpu"); m=$(median < "$tmp/$a.rss")
  label=$a; [ $a = keel-heap ] && label="keel, heap per tree (keel_heap_destroy)"; [ $a = keel ] && label="keel, malloc/free"
  if [ -z "$c" ]; then printf '| %s | FAIL | | |\n' "$label"; continue; fi
  ratio=-; [ -n "$k" ] && awk "BEGIN{exit !($k > 0)}" && ratio=$(awk "BEGIN{printf \"%.2fx\", $c/$k}")
  printf '| %s | %s | %s | %.1f |\n' "$label" "$c" "$ratio" "$(awk "BEGIN{print $m/1024}")"
done
exit $failed
