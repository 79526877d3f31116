#!/usr/bin/env bash
# Hardening (issue 7): misuse caught in the default, secure and debug builds
# (death tests), and the secure and debug builds running the API contract and
# stress tests. Release variant only: the three libraries come from one build.
source "$KEEL_ROOT/tests/lib.sh"
skip_unless_variant release
b=$KEEL_BUILD
cc -O1 -g -Wno-free-nonheap-object -o "$KL_TMP/death" "$KEEL_ROOT/tests/hardening/death.c" -ldl || { t "build death tests" false; finish; exit; }
for build in default secure debug; do
  lib=$b/libkeel.so; [ $build = default ] || lib=$b/libkeel-$build.so
  t "$build: library exists" test -f "$lib"
  tc "$build: death tests" env LD_PRELOAD="$lib" "$KL_TMP/death" $build
done
# The whole contract and the stress test under the other builds, where the
# core suites built them (tests/CMakeLists.txt).
for build in secure debug; do
  for prog in $(ls "$b"/tests/ 2>/dev/null | grep -E '^(api|stress|contract)[-_a-z]*$' | grep -v -- '-keel$'); do
    [ -x "$b/tests/$prog" ] || continue
    tc "$build: $prog" env LD_PRELOAD="$b/libkeel-$build.so" "$b/tests/$prog"
  done
done
finish
