#!/usr/bin/env bash
# `make bench`: installs the comparison allocators and programs if missing
# (tools/deps.sh bench), builds the workloads into build-bench/, and runs
# bench/run.py, which alternates allocators, writes bench/results/ and, for a
# full run, bench/RESULTS.md.
# Env (make passes its command-line variables through): QUICK=1, SMOKE=1,
# ONLY=name[,name], ALLOCATORS="glibc keel ...", THREADS="1 2 4", ROUNDS=n,
# OUTDIR=dir. See bench/run.py for the details.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash tools/deps.sh bench
[ -n "${KEEL_LIB:-}" ] || [ -e build/libkeel.so ] || { echo "bench: build/libkeel.so missing; run make first" >&2; exit 1; }
bin=${KBENCH_BIN:-$root/build-bench}
mkdir -p "$bin"
# -fno-builtin-malloc/free: the compiler must not fold away the pairs being measured.
cc=${CC:-gcc}
$cc -O2 -g -std=gnu11 -Wall -Wextra -pthread bench/workloads.c -o "$bin/kbench"
$cc -O2 -Wall -Wextra bench/runner.c -o "$bin/kbrun"
$cc -O2 -g -std=gnu11 -Wall -Wextra -fno-builtin-malloc -fno-builtin-free bench/fastpath.c -o "$bin/fastpath"
# Snapshot keel's library: the lead may rebuild build/ during a long run, and
# every round must measure the same keel.
if [ -z "${KEEL_LIB:-}" ]; then cp -L build/libkeel.so "$bin/libkeel.so.tmp$$" && mv -f "$bin/libkeel.so.tmp$$" "$bin/libkeel.so"; export KEEL_LIB="$bin/libkeel.so"; fi
args=""
for v in QUICK SMOKE ONLY ALLOCATORS THREADS ROUNDS; do
  [ -n "${!v:-}" ] && args="$args $v=\"${!v}\""
done
export KBENCH_BIN="$bin" BENCH_CMDLINE="make bench${args}"
exec python3 bench/run.py
