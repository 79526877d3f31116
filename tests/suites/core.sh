#!/usr/bin/env bash
# Core (issue 2): the version in every place it is written, the allocation
# contract through keel_* and through the standard names, realloc in place
# and across every size regime, the multi-threaded stress test, thread churn,
# fork, first calls before main / after main, the huge-block pool and the
# foreign caches, in both builds.
source "$KEEL_ROOT/tests/lib.sh"
b=$KEEL_BUILD; src=$KEEL_ROOT/tests/core
CC="cc -O1 -g -fno-builtin -Wno-alloc-size-larger-than -I$KEEL_ROOT/include -L$b -Wl,-rpath,$b"
$CC "$src/contract.c" -o "$KL_TMP/contract" -lkeel -ldl &&
$CC -DUSE_KEEL_API "$src/contract.c" -o "$KL_TMP/contract-keel" -lkeel -ldl &&
$CC "$src/realloc.c" -o "$KL_TMP/realloc" -lkeel -ldl -pthread &&
$CC "$src/pool.c" -o "$KL_TMP/pool" -lkeel -pthread &&
$CC "$src/foreign.c" -o "$KL_TMP/foreign" -lkeel -pthread &&
$CC "$src/sole.c" -o "$KL_TMP/sole" -lkeel -pthread &&
$CC "$src/holes.c" -o "$KL_TMP/holes" -lkeel -pthread &&
$CC "$src/dense.c" -o "$KL_TMP/dense" -lkeel &&
$CC "$src/idle.c" -o "$KL_TMP/idle" -lkeel -pthread &&
$CC -O2 "$src/stress.c" -o "$KL_TMP/stress" -lkeel -pthread &&
$CC "$src/threads.c" -o "$KL_TMP/threads" -lkeel -pthread &&
cc -shared -fPIC -O1 "$src/ctor-lib.c" -o "$KL_TMP/libctor.so" || { t "build core tests" false; finish; exit; }
t "SONAME is libkeel.so.1" bash -c "readelf -d $b/libkeel.so | grep -q 'SONAME.*libkeel.so.1]'"
# One version everywhere: keel.h's KEEL_VERSION_* macros, CMakeLists.txt's
# project(VERSION), what keel_version() of the built library returns, the
# SONAME (libkeel.so.<major>) and file name, `keel --version` and keel.pc.
cat > "$KL_TMP/version.c" <<'C'
#include <stdio.h>
#include "keel.h"
int main(void) { int v = keel_version(); printf("%d.%d.%d\n", v / 10000, v / 100 % 100, v % 100); return 0; }
C
version_agrees() {
  local h c l so cmd pc
  h=$(awk '$1 == "#define" && $2 ~ /^KEEL_VERSION_(MAJOR|MINOR|PATCH)$/ { v[$2] = $3 }
           END { print v["KEEL_VERSION_MAJOR"] "." v["KEEL_VERSION_MINOR"] "." v["KEEL_VERSION_PATCH"] }' "$KEEL_ROOT/include/keel.h")
  c=$(sed -nE 's/^[[:space:]]*project\([[:space:]]*keel[[:space:]]+VERSION[[:space:]]+([0-9.]+).*/\1/p' "$KEEL_ROOT/CMakeLists.txt")
  $CC "$KL_TMP/version.c" -o "$KL_TMP/version" -lkeel || return 1
  l=$("$KL_TMP/version")
  so=$(readelf -d "$b/libkeel.so" | sed -nE 's/.*\(SONAME\).*\[(.*)\]/\1/p')
  cmd=$("$b/keel" --version 2>/dev/null)
  pc=$(sed -n 's/^Version: //p' "$b/packaging/keel.pc" 2>/dev/null)
  echo "keel.h $h, CMakeLists.txt $c, keel_version() $l, SONAME $so, keel --version '$cmd', keel.pc $pc"
  [[ $h =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] && [ "$c" = "$h" ] && [ "$l" = "$h" ] &&
    [ "$so" = "libkeel.so.${h%%.*}" ] && [ -f "$b/libkeel.so.$h" ] &&
    [ "$(readlink -f "$b/libkeel.so")" = "$(readlink -f "$b/libkeel.so.$h")" ] &&
    [ "$cmd" = "keel $h" ] && [ "$pc" = "$h" ]
}
t "one version: keel.h, CMakeLists.txt, keel_version(), SONAME, keel --version, keel.pc" version_agrees
t "libkeel.a holds the whole family in one object" bash -c \
  "nm -A $b/libkeel.a 2>/dev/null | grep -E ' T (malloc|free|calloc|realloc|aligned_alloc|posix_memalign|memalign|valloc|pvalloc|malloc_usable_size|reallocarray)\$' | cut -d: -f2 | sort -u | wc -l | grep -qx 1"
tc "contract, standard names" "$KL_TMP/contract"
tc "contract, keel_* API" "$KL_TMP/contract-keel"
tc "realloc: in place, huge growth to 256 MiB in O(log n) moves, every regime boundary, the large class, another class's empty page, room to grow" "$KL_TMP/realloc" 256
tc "huge-block pool: freed mappings carved in place and moved without faults, contents, zeros, split mappings never moved, malloc_trim, 4 threads; a fresh huge block gives back the cached segments first" "$KL_TMP/pool"
tc "huge-block pool, secure build (no pool): contents, zeros, split mappings, 4 threads" env POOL_NONE=1 LD_PRELOAD="$b/libkeel-secure.so" "$KL_TMP/pool"
tc "foreign caches: a thread reuses the blocks it freed of others, which stay freed blocks (double free, visit), go back at exit, malloc_trim and overflow (also from a thread that only frees, and from a late key destructor), not handed to a thread that freed them before its first malloc, never a first-class heap's" "$KL_TMP/foreign"
tc "foreign caches, secure build (none kept)" env NO_FOREIGN=1 LD_PRELOAD="$b/libkeel-secure.so" "$KL_TMP/foreign"
tc "a class's only page: kept when it empties in a loop, an ordinary page once others join, not lost to a remote free, given back at thread exit" "$KL_TMP/sole"
tc "holes: the free OS pages of sparse pages given back by malloc_trim and as the heap grows, contents kept, visit sees the live blocks, holes filled again, fewer holes where they come back soon, 4 threads with remote frees in flight; a double free in a hole caught when the page empties or the hole fills; cold medium blocks given back and taken again, a double free of one caught at once; a medium malloc takes a bigger class's free block" env KEEL_PURGE_DELAY=1 "$KL_TMP/holes"
tc "holes, secure build (none made; contents, visit, double frees caught at once)" env NO_HOLES=1 KEEL_PURGE_DELAY=1 LD_PRELOAD="$b/libkeel-secure.so" "$KL_TMP/holes"
tc "holes, debug build (none made; contents, visit, double frees caught at once)" env NO_HOLES=1 KEEL_PURGE_DELAY=1 LD_PRELOAD="$b/libkeel-debug.so" "$KL_TMP/holes"
tc "fresh small pages of classes of 1 KiB or more faulted in from their first block; dense huge blocks: faulted in when handed out after blocks written whole, never calloc's, no longer after two sparse ones" "$KL_TMP/dense"
tc "dense huge blocks, secure build (never faulted in ahead)" env NO_POPULATE=1 LD_PRELOAD="$b/libkeel-secure.so" "$KL_TMP/dense"
tc "dense huge blocks, KEEL_POPULATE=0 (never faulted in ahead)" env NO_POPULATE=1 KEEL_POPULATE=0 "$KL_TMP/dense"
tc "an idle thread's free pages: given back by the purger thread while it makes no call (200 MB freed: resident back within 8 MiB of its start), and usable again" "$KL_TMP/idle"
tc "an idle thread's free pages, KEEL_PURGE_THREAD=0 (kept until the thread calls again; shown, not checked)" env NO_IDLE_PURGE=1 KEEL_PURGE_THREAD=0 "$KL_TMP/idle"
if [ "$KEEL_VARIANT" = release ]; then ops=200000; threads=100000; else ops=40000; threads=20000; fi
tc "stress: 4 threads, 1 B..1 MiB, remote frees, realloc" "$KL_TMP/stress" $ops
tc "thread churn ($threads threads), fork under load, init and exit order" env LD_PRELOAD="$KL_TMP/libctor.so" "$KL_TMP/threads" $threads
finish
