#!/usr/bin/env bash
# Core (issue 2): the allocation contract through keel_* and through the
# standard names, the multi-threaded stress test, thread churn, fork, and
# first calls before main / after main, in both builds.
source "$KEEL_ROOT/tests/lib.sh"
b=$KEEL_BUILD; src=$KEEL_ROOT/tests/core
CC="cc -O1 -g -fno-builtin -Wno-alloc-size-larger-than -I$KEEL_ROOT/include -L$b -Wl,-rpath,$b"
$CC "$src/contract.c" -o "$KL_TMP/contract" -lkeel -ldl &&
$CC -DUSE_KEEL_API "$src/contract.c" -o "$KL_TMP/contract-keel" -lkeel -ldl &&
$CC -O2 "$src/stress.c" -o "$KL_TMP/stress" -lkeel -pthread &&
$CC "$src/threads.c" -o "$KL_TMP/threads" -lkeel -pthread &&
cc -shared -fPIC -O1 "$src/ctor-lib.c" -o "$KL_TMP/libctor.so" || { t "build core tests" false; finish; exit; }
t "SONAME is libkeel.so.1" bash -c "readelf -d $b/libkeel.so | grep -q 'SONAME.*libkeel.so.1]'"
t "libkeel.a holds the whole family in one object" bash -c \
  "nm -A $b/libkeel.a 2>/dev/null | grep -E ' T (malloc|free|calloc|realloc|aligned_alloc|posix_memalign|memalign|valloc|pvalloc|malloc_usable_size|reallocarray)\$' | cut -d: -f2 | sort -u | wc -l | grep -qx 1"
tc "contract, standard names" "$KL_TMP/contract"
tc "contract, keel_* API" "$KL_TMP/contract-keel"
if [ "$KEEL_VARIANT" = release ]; then ops=200000; threads=100000; else ops=40000; threads=20000; fi
tc "stress: 4 threads, 1 B..1 MiB, remote frees, realloc" "$KL_TMP/stress" $ops
tc "thread churn ($threads threads), fork under load, init and exit order" env LD_PRELOAD="$KL_TMP/libctor.so" "$KL_TMP/threads" $threads
finish
