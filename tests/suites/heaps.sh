#!/usr/bin/env bash
# First-class heaps (issue 10), in both builds.
source "$KEEL_ROOT/tests/lib.sh"
cc -O1 -g -I"$KEEL_ROOT/include" -o "$KL_TMP/heaps" "$KEEL_ROOT/tests/heaps/heaps.c" \
   -L"$KEEL_BUILD" -lkeel -Wl,-rpath,"$KEEL_BUILD" -pthread || { t "build heap tests" false; finish; exit; }
tc "heap API and rules" "$KL_TMP/heaps"
finish
