#!/usr/bin/env bash
# Hardening (issue 7), in both builds: misuse caught in the default, secure
# and debug libraries (death tests, tests/hardening/death.c); the secure
# library's guard pages, random block order and random segment addresses,
# with the default library as the control (tests/hardening/secure.c); and,
# in the release build, the secure and debug libraries running the whole API
# contract and the stress test. Not in the checked build: there the secure
# and debug libraries are the same sources without KL_CHECKED (CMakeLists.txt
# gives it to the default library only), so the run would repeat the
# release one at -O2; the checked default library's part is the death tests.
source "$KEEL_ROOT/tests/lib.sh"
b=$KEEL_BUILD
H=$KEEL_ROOT/tests/hardening
cc -O1 -g -Wno-free-nonheap-object -o "$KL_TMP/death" "$H/death.c" -ldl &&
cc -O1 -g -o "$KL_TMP/secure" "$H/secure.c" -ldl || { t "build hardening tests" false; finish; exit; }
for build in default secure debug; do
  lib=$b/libkeel.so; [ $build = default ] || lib=$b/libkeel-$build.so
  t "$build: library exists" test -f "$lib"
  tc "$build: death tests" env LD_PRELOAD="$lib" "$KL_TMP/death" $build
done
tc "secure: guard pages, random order, random segments" env LD_PRELOAD="$b/libkeel-secure.so" "$KL_TMP/secure" secure
tc "default: the same probes find none of it (control)" env LD_PRELOAD="$b/libkeel.so" "$KL_TMP/secure" default
[ "$KEEL_VARIANT" = release ] || { finish; exit; }
# The whole contract and the stress test under the other builds.
CC="cc -O1 -g -fno-builtin -Wno-alloc-size-larger-than -I$KEEL_ROOT/include -L$b -Wl,-rpath,$b"
$CC "$KEEL_ROOT/tests/core/contract.c" -o "$KL_TMP/contract" -lkeel -ldl &&
$CC -O2 "$KEEL_ROOT/tests/core/stress.c" -o "$KL_TMP/stress" -lkeel -pthread || t "build contract and stress" false
for build in secure debug; do
  tc "$build: API contract" env CONTRACT_REALLOC_COPIES=1 LD_PRELOAD="$b/libkeel-$build.so" "$KL_TMP/contract"
  tc "$build: stress" env LD_PRELOAD="$b/libkeel-$build.so" "$KL_TMP/stress" 30000
done
finish
