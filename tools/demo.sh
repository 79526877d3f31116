#!/usr/bin/env bash
# `make demo`: runs the bundled multi-threaded workload (tools/demo-workload.c)
# on the system allocator and on keel, alternately, three times each, and
# prints the median time and peak memory side by side.
set -eu
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
prog="$build/keel-demo"
threads=${DEMO_THREADS:-4}; rounds=${DEMO_ROUNDS:-300000}
[ -x "$prog" ] || { echo "demo: $prog is missing; run make first" >&2; exit 1; }
echo "keel demo: $threads threads x $rounds requests each (mixed sizes 8 B..576 KiB,"
echo "a third of blocks freed by another thread, realloc-grown logs, contents checked)"
echo
run() { if [ "$1" = keel ]; then "$build/keel" "$prog" "$threads" "$rounds"; else "$prog" "$threads" "$rounds"; fi; }
declare -A secs rss sums
for round in 1 2 3; do
  for a in glibc keel; do
    out=$(run $a)
    secs[$a]+="$(echo "$out" | awk '{print $2}') "
    rss[$a]+="$(echo "$out" | awk '{print $4}') "
    sums[$a]=$(echo "$out" | awk '{print $8}')
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
gs=$(echo "${secs[glibc]}" | median); ks=$(echo "${secs[keel]}" | median)
gr=$(echo "${rss[glibc]}" | median); kr=$(echo "${rss[keel]}" | median)
printf '%-22s %12s %12s\n' "" "glibc malloc" "keel"
printf '%-22s %12s %12s\n' "time (median of 3)" "${gs}s" "${ks}s"
printf '%-22s %9s MiB %9s MiB\n' "peak memory" "$(awk "BEGIN{printf \"%.1f\", $gr/1024}")" "$(awk "BEGIN{printf \"%.1f\", $kr/1024}")"
printf '%-22s %12s %12s\n' "checksum" "${sums[glibc]}" "${sums[keel]}"
echo
awk "BEGIN{printf \"keel ran the workload in %.2fx the time of glibc's malloc, with %.2fx its peak memory.\n\", $ks/$gs, $kr/$gr}"
[ "${sums[glibc]}" = "${sums[keel]}" ] && echo "Both runs produced the same checksum: every block's contents were verified before free." \
  || { echo "demo: checksums differ: keel changed the program's results" >&2; exit 1; }
