#!/usr/bin/env bash
# keel under valgrind memcheck (release build only), both ways README
# "Memory checkers" documents:
#  1. plain `valgrind prog`: memcheck replaces the standard malloc family,
#     keel's included, by its own and finds leaks and overflows as usual
#     (keel_* calls still run on keel);
#  2. `valgrind --soname-synonyms=somalloc=NONE prog`: the program runs on
#     keel; memcheck checks every access against the memory keel mapped (no
#     invalid access and no uninitialised value in keel itself) but does not
#     know block boundaries.
source "$KEEL_ROOT/tests/lib.sh"
skip_unless_variant release
command -v valgrind >/dev/null || { t "valgrind is installed" false; finish; exit; }
b=$KEEL_BUILD
CC="cc -O1 -g -fno-builtin -Wno-alloc-size-larger-than -I$KEEL_ROOT/include -L$b -Wl,-rpath,$b"
$CC -DUSE_KEEL_API "$KEEL_ROOT/tests/core/contract.c" -o "$KL_TMP/contract-keel" -lkeel -ldl &&
$CC -O2 "$KEEL_ROOT/tests/core/stress.c" -o "$KL_TMP/stress" -lkeel -pthread || { t "build" false; finish; exit; }
VG="valgrind -q --error-exitcode=99"
tc "contract (keel API) under memcheck, no errors" $VG "$KL_TMP/contract-keel"
tc "stress on keel under memcheck (somalloc=NONE), no errors" $VG --soname-synonyms=somalloc=NONE "$KL_TMP/stress" 5000
cat > "$KL_TMP/leak.c" <<'C'
#include <stdlib.h>
#include <string.h>
int main(void) { char *p = malloc(10); memset(p, 0, 10); p = malloc(20); p[20] = 1; return 0; }
C
cc -O0 -g "$KL_TMP/leak.c" -o "$KL_TMP/leak" -L"$b" -lkeel -Wl,-rpath,"$b"
t "plain valgrind finds an overflow and a leak in a keel-linked program" bash -c \
  "valgrind --leak-check=full $KL_TMP/leak > $KL_TMP/vg.txt 2>&1; grep -q 'Invalid write of size 1' $KL_TMP/vg.txt && grep -q '10 bytes in 1 blocks are definitely lost' $KL_TMP/vg.txt"
finish
