#!/usr/bin/env bash
# Reliability (issue 9) at `make test` scale: multi-threaded stress with
# remote frees and thread replacement, thread churn, first calls and calls
# after teardown, fork under load, dlopen/dlclose, exhaustion under an
# address-space limit and under injected mmap failures, 60 s of libFuzzer,
# and real programs (redis, sqlite3, python3's test suite, gcc, perl, git)
# on keel compared with the system allocator. `make stress` runs the same at
# a larger scale (tools/stress.sh); docs/RELIABILITY.md has the budget.
# Release variant only (about 3.5 minutes on 2 cores).
source "$KEEL_ROOT/tests/lib.sh"
skip_unless_variant release
source "$KEEL_ROOT/tests/reliability/build.sh"
source "$KEEL_ROOT/tests/reliability/programs.sh"
cd "$KEEL_ROOT" || exit 1
B=$KEEL_ROOT/build-rel/bin
t "build reliability programs" rel_build_progs "$KEEL_BUILD" "$B" || { finish; exit; }

# ---- the allocator under load
tc "stress: 4 threads, remote frees, replaced threads, stats reconcile" "$B/stress" 4 20000 16 4096
tc "churn: 20,000 threads one at a time, RSS flat" "$B/churn" 20000 1
# 8 threads starting and exiting at once: the case that once made RSS grow
# tenfold (threads found the abandoned list or the heap pool empty while
# another thread held it, and mapped fresh memory; see segment.c, heap.c).
tc "churn: 20,000 threads 8 at a time, RSS flat" "$B/churn" 20000 8
tc "first call of a thread, calls after teardown" "$B/firstop" 1000
tc "fork x100 while 3 threads allocate and threads start and exit" "$B/forks" 100 3
tc "dlopen/dlclose x2000 of an allocating library" "$B/dlopen" "$B/dlib.so" 2000
tc "a heap never adopts a dead thread's blocks" "$B/heap_reclaim"

# ---- exhaustion
tc "address space limit 512 MiB: NULL, recover, 100 MiB again" "$B/exhaust" as 512
tc "address space limit 128 MiB: 100 MiB after freeing everything" "$B/exhaust" as 128
t "ulimit -v 768 MiB from the shell" bash -c "ulimit -v $(( ( $(awk '{print $1}' /proc/self/statm) * 4 ) + 786432 )) && '$B/exhaust' inject"
if t "build fault-injection library" rel_build_fault "$KEEL_ROOT/build-rel-fault"; then
  for spec in after:0 after:2 after:5 after:20 every:2 every:3 every:7; do
    tc "mmap refused ($spec)" env KEEL_TEST_MMAP_FAIL=$spec "$KEEL_ROOT/build-rel-fault/exhaust" inject
  done
fi

# ---- fuzzing: replay the seed corpus on the release library, then 60 s of
# libFuzzer on a checked + ASan + UBSan build (new inputs go to a scratch
# corpus; a crash reproducer lands in build-rel-fuzz/).
t "build fuzz replayer" gcc -std=gnu11 -O1 -g -DFUZZ_STANDALONE -I"$KEEL_ROOT/include" -o "$B/fuzz_replay" \
  "$KEEL_ROOT/tests/fuzz/fuzz_api.c" -L"$KEEL_BUILD" -lkeel -Wl,-rpath,"$KEEL_BUILD" -lpthread
t "fuzz seed corpus on the release library" "$B/fuzz_replay" "$KEEL_ROOT"/tests/fuzz/corpus/*
if t "build libFuzzer harness (clang)" rel_build_fuzzer "$KEEL_ROOT/build-rel-fuzz"; then
  mkdir -p "$KL_TMP/corpus"
  t "libFuzzer, 60 s" "$KEEL_ROOT/build-rel-fuzz/fuzz_api" -max_total_time="${REL_FUZZ_SECONDS:-60}" -timeout=20 \
    -rss_limit_mb=3072 -print_final_stats=1 -artifact_prefix="$KEEL_ROOT/build-rel-fuzz/" "$KL_TMP/corpus" "$KEEL_ROOT/tests/fuzz/corpus"
fi

# ---- real programs, preloaded, compared with glibc
export REL_LIB=$KEEL_BUILD/libkeel.so REL_SCALE=1 REL_WORK=$KL_TMP/work
mkdir -p "$REL_WORK"
t "sqlite3: 300k rows, CTEs, indexes, GROUP BY, window functions" rel_sqlite
t "redis-server under redis-benchmark" rel_redis
t "python3: CPython test suite slice" rel_python
t "gcc -O2 of keel and the tests" rel_gcc
t "perl: 300k-key hash, sort, regex" rel_perl
t "git: 150 commits, gc, fsck" rel_git
finish
