#!/usr/bin/env bash
# `make stress`: the reliability checks of tests/suites/reliability.sh at a
# large scale, against the release build in build/ (made by `make stress`
# first). About 12 minutes on 2 cores; ends "N passed, N failed" and exits
# non-zero on any failure. REL_SCALE (default 4) scales the real programs.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
export KEEL_ROOT=$root KEEL_BUILD=${KEEL_BUILD:-$root/build} KEEL_VARIANT=release
source "$root/tests/lib.sh"
source "$root/tests/reliability/build.sh"
source "$root/tests/reliability/programs.sh"
cd "$root" || exit 1
start=$(date +%s)
B=$root/build-rel/bin
t "build reliability programs" rel_build_progs "$KEEL_BUILD" "$B" || { finish; exit; }

for seed in 1 2; do
  tc "stress seed $seed: 8 threads x 100k ops, 32 generations, blocks to 8 MiB" "$B/stress" 8 100000 32 8192 $seed
done
tc "stress: 32 threads x 20k ops, 256 generations" "$B/stress" 32 20000 256 1024 7
tc "churn: 100,000 threads, RSS flat" "$B/churn" 100000 8
tc "churn: 100,000 threads one at a time" "$B/churn" 100000 1
tc "first calls; 40,000 threads torn down and revived" "$B/firstop" 10000
tc "fork x500 while 4 threads allocate and threads start and exit" "$B/forks" 500 4
tc "dlopen/dlclose x20000" "$B/dlopen" "$B/dlib.so" 20000
tc "a heap never adopts a dead thread's blocks" "$B/heap_reclaim"
for mib in 128 512 2048; do
  tc "address space limit $mib MiB" "$B/exhaust" as $mib
done
if t "build fault-injection library" rel_build_fault "$root/build-rel-fault"; then
  for spec in after:0 after:1 after:2 after:3 after:4 after:6 after:10 after:30 after:100 every:2 every:3 every:4 every:5 every:11 every:50; do
    tc "mmap refused ($spec)" env KEEL_TEST_MMAP_FAIL=$spec "$root/build-rel-fault/exhaust" inject
  done
fi

export REL_LIB=$KEEL_BUILD/libkeel.so REL_SCALE=${REL_SCALE:-4} REL_WORK=$KL_TMP/work
mkdir -p "$REL_WORK"
t "sqlite3 x$REL_SCALE" rel_sqlite
t "redis-server under redis-benchmark x$REL_SCALE" rel_redis
t "python3: CPython test suite, larger slice" rel_python
t "gcc x$REL_SCALE" rel_gcc
t "perl x$REL_SCALE" rel_perl
t "git x$REL_SCALE" rel_git
echo "make stress took $(( $(date +%s) - start ))s"
finish
