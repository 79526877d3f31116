#!/usr/bin/env bash
# First-class heaps (issue 10), in both builds: every function and rule
# (heaps.c, misuse cases under KEEL_ON_ERROR=warn), and the ownership rule's
# death tests in the default mode, abort (death.c).
source "$KEEL_ROOT/tests/lib.sh"
CC="cc -O1 -g -I$KEEL_ROOT/include -L$KEEL_BUILD -Wl,-rpath,$KEEL_BUILD"
$CC -o "$KL_TMP/heaps" "$KEEL_ROOT/tests/heaps/heaps.c" -lkeel -pthread &&
$CC -o "$KL_TMP/death" "$KEEL_ROOT/tests/heaps/death.c" -lkeel -pthread || { t "build heap tests" false; finish; exit; }
tc "heap API and rules" "$KL_TMP/heaps"
tc "another thread's heap calls abort with the heap named (death tests)" env -u KEEL_ON_ERROR "$KL_TMP/death"
finish
