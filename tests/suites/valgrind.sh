#!/usr/bin/env bash
# keel under valgrind memcheck (release build only), both ways README
# "Memory checkers" documents:
#  1. plain `valgrind prog`: memcheck replaces the standard malloc family,
#     keel's included, by its own and finds leaks and overflows as usual
#     (keel_* calls still run on keel): the contract through keel_*, and a
#     program with a leak and an overflow that memcheck must report;
#  2. `valgrind --soname-synonyms=somalloc=NONE prog`: the program runs on
#     keel; memcheck checks every access against the memory keel mapped (no
#     invalid access and no uninitialised value in keel itself) but does not
#     know block boundaries. Every unit test program runs this way: the
#     contract through the standard names, realloc, stress, thread churn and
#     fork, heaps and their death tests, statistics. Under memcheck a
#     program runs 20 to 50 times slower, so the long ones get smaller
#     arguments than in their own suites (stress 5,000 ops per thread,
#     realloc growth to 32 MiB, 1,000 threads and 10 forks): about a minute
#     of CPU in all (the original two programs took 20 s).
source "$KEEL_ROOT/tests/lib.sh"
skip_unless_variant release
command -v valgrind >/dev/null || { t "valgrind is installed" false; finish; exit; }
b=$KEEL_BUILD
CC="cc -O1 -g -fno-builtin -Wno-alloc-size-larger-than -Wno-deprecated-declarations -I$KEEL_ROOT/include -L$b -Wl,-rpath,$b"
$CC -DUSE_KEEL_API "$KEEL_ROOT/tests/core/contract.c" -o "$KL_TMP/contract-keel" -lkeel -ldl &&
$CC "$KEEL_ROOT/tests/core/contract.c" -o "$KL_TMP/contract" -lkeel -ldl &&
$CC "$KEEL_ROOT/tests/core/realloc.c" -o "$KL_TMP/realloc" -lkeel -ldl -pthread &&
$CC -O2 "$KEEL_ROOT/tests/core/stress.c" -o "$KL_TMP/stress" -lkeel -pthread &&
$CC "$KEEL_ROOT/tests/core/threads.c" -o "$KL_TMP/threads" -lkeel -pthread &&
cc -shared -fPIC -O1 "$KEEL_ROOT/tests/core/ctor-lib.c" -o "$KL_TMP/libctor.so" &&
$CC "$KEEL_ROOT/tests/heaps/heaps.c" -o "$KL_TMP/heaps" -lkeel -pthread &&
$CC "$KEEL_ROOT/tests/heaps/death.c" -o "$KL_TMP/heap-death" -lkeel -pthread &&
$CC "$KEEL_ROOT/tests/observe/stats.c" -o "$KL_TMP/stats" -lkeel -pthread || { t "build" false; finish; exit; }
VG="valgrind -q --error-exitcode=99"
ON_KEEL="$VG --soname-synonyms=somalloc=NONE"
tc "contract (keel API) under memcheck, no errors" $VG "$KL_TMP/contract-keel"
tc "contract (standard names) on keel under memcheck (somalloc=NONE), no errors" $ON_KEEL "$KL_TMP/contract"
tc "realloc on keel under memcheck (somalloc=NONE), no errors" $ON_KEEL "$KL_TMP/realloc" 32
tc "stress on keel under memcheck (somalloc=NONE), no errors" $ON_KEEL "$KL_TMP/stress" 5000
tc "thread churn and fork on keel under memcheck (somalloc=NONE), no errors" \
   env LD_PRELOAD="$KL_TMP/libctor.so" $ON_KEEL "$KL_TMP/threads" 1000 10
tc "heaps on keel under memcheck (somalloc=NONE), no errors" $ON_KEEL "$KL_TMP/heaps"
tc "heap death tests on keel under memcheck (somalloc=NONE)" env -u KEEL_ON_ERROR $ON_KEEL "$KL_TMP/heap-death"
tc "statistics on keel under memcheck (somalloc=NONE), no errors" $ON_KEEL "$KL_TMP/stats"
cat > "$KL_TMP/leak.c" <<'C'
#include <stdlib.h>
#include <string.h>
int main(void) { char *p = malloc(10); memset(p, 0, 10); p = malloc(20); p[20] = 1; return 0; }
C
cc -O0 -g "$KL_TMP/leak.c" -o "$KL_TMP/leak" -L"$b" -lkeel -Wl,-rpath,"$b"
t "plain valgrind finds an overflow and a leak in a keel-linked program" bash -c \
  "valgrind --leak-check=full $KL_TMP/leak > $KL_TMP/vg.txt 2>&1; grep -q 'Invalid write of size 1' $KL_TMP/vg.txt && grep -q '10 bytes in 1 blocks are definitely lost' $KL_TMP/vg.txt"
finish
