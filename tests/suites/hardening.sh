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
# The whole contract and the stress test under the other builds.
CC="cc -O1 -g -fno-builtin -Wno-alloc-size-larger-than -I$KEEL_ROOT/include -L$b -Wl,-rpath,$b"
$CC "$KEEL_ROOT/tests/core/contract.c" -o "$KL_TMP/contract" -lkeel -ldl &&
$CC -O2 "$KEEL_ROOT/tests/core/stress.c" -o "$KL_TMP/stress" -lkeel -pthread || t "build contract and stress" false
for build in secure debug; do
  tc "$build: API contract" env CONTRACT_REALLOC_COPIES=1 LD_PRELOAD="$b/libkeel-$build.so" "$KL_TMP/contract"
  tc "$build: stress" env LD_PRELOAD="$b/libkeel-$build.so" "$KL_TMP/stress" 30000
done
finish
