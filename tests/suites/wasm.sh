#!/usr/bin/env bash
# keel for wasm32 (src/wasm/): builds both archives with tools/wasm.sh, then
# compiles the wasm tests (tests/wasm/) with emcc (with and without
# -sALLOW_MEMORY_GROWTH) and with clang --target=wasm32-wasi, runs them
# under node and checks: the contract, a long random sequence of every
# family member, determinism (same address hash on every run), linking
# (wasi-libc's __libc_* users; emscripten with -sMALLOC=none, sbrk),
# bad frees trapping, the size promise (smaller than emmalloc), and the -mt
# archive under 4 threads (emcc -pthread).
# Release variant only (the wasm build does not depend on it); ~1-2 min.
. "$KEEL_ROOT/tests/lib.sh"
skip_unless_variant release
root=$KEEL_ROOT
export NODE_PATH=${NODE_PATH:-/usr/share/nodejs}
lib=${KEEL_WASM_OUT:-$root/build/wasm}   # where tools/wasm.sh writes
w=$KL_TMP/w; mkdir -p "$w"
inc=(-I"$root/include" -I"$root/tests" -fno-builtin -O2)

t "make wasm builds the archives" bash "$root/tools/wasm.sh"
t "archives exist" test -s "$lib/libkeel-emscripten.a" -a -s "$lib/libkeel-wasi.a" -a -s "$lib/libkeel-emscripten-mt.a"

em()   { emcc "${inc[@]}" "$root/tests/wasm/$1.c" -sMALLOC=none "${@:3}" "$lib/libkeel-emscripten.a" -o "$w/$2.js"; }
wasi() { clang --target=wasm32-wasi --sysroot=/usr "${inc[@]}" "$root/tests/wasm/$1.c" "$lib/libkeel-wasi.a" -Wl,--strip-all -o "$w/$2.wasm"; }
run_em()   { local p=$1; shift; node --no-experimental-fetch "$w/$p.js" "$@"; }
# --single-threaded: node 20 (v20.20) crashes with SIGSEGV at exit after a
# WASI program that grew its memory a lot (contract.c: 19 runs of 20 with
# this keel, 7 of 20 with the previous one; a small program never), from
# its background platform threads; without them, 0 crashes in 50 runs.
run_wasi() { local p=$1; shift; node --single-threaded "$root/tests/wasm/run-wasi.mjs" "$w/$p.wasm" "$@"; }

for prog in contract random determinism; do
  fixed=(-DKL_NO_GROWTH)   # fixed memory: the random test's live set needs more than the default 16 MiB
  [ $prog = random ] && fixed+=(-sINITIAL_MEMORY=256MB)
  t "emcc links $prog (growth)"    em "$prog" "em-$prog" -sALLOW_MEMORY_GROWTH
  t "emcc links $prog (fixed)"     em "$prog" "emfix-$prog" "${fixed[@]}"
  t "wasi links $prog"             wasi "$prog" "wasi-$prog"
done
tc "contract: emscripten, growth" run_em em-contract
tc "contract: emscripten, fixed memory" run_em emfix-contract
tc "contract: wasi" run_wasi wasi-contract
tc "random sequence: emscripten" run_em em-random 300000
tc "random sequence: emscripten, fixed memory" run_em emfix-random 300000
tc "random sequence: wasi" run_wasi wasi-random 300000

same_hash() {  # runner prog: three runs print one and the same hash
  local a b c; a=$("$@") && b=$("$@") && c=$("$@") || return 1
  echo "$a / $b / $c"; [ -n "$a" ] && [ "$a" = "$b" ] && [ "$b" = "$c" ]
}
t "deterministic addresses: emscripten" same_hash run_em em-determinism
t "deterministic addresses: emscripten, fixed memory" same_hash run_em emfix-determinism
t "deterministic addresses: wasi" same_hash run_wasi wasi-determinism

t "wasi: atexit + locales link (__libc_* from keel)" wasi link-wasi wasi-link
tc "wasi: atexit + locales run" run_wasi wasi-link
t "emscripten: -sMALLOC=none links (environ, sbrk)" em link-em em-link -sALLOW_MEMORY_GROWTH
tc "emscripten: sbrk between allocations" run_em em-link

t "wasi links badfree" wasi badfree wasi-badfree
traps() { ! run_wasi wasi-badfree "$1" >"$w/bf.out" 2>&1 && grep -q "unreachable" "$w/bf.out"; }
for how in twice misaligned foreign; do t "bad free traps: $how" traps "$how"; done

# Threads: the -mt archive's lock under 4 pthreads on node. EXIT_RUNTIME so
# that node exits when main returns, and a timeout in case a thread hangs.
t "emcc -pthread links threads (-mt archive)" emcc "${inc[@]}" "$root/tests/wasm/threads.c" -pthread \
  -sPTHREAD_POOL_SIZE=4 -sEXIT_RUNTIME -sALLOW_MEMORY_GROWTH -Wno-pthreads-mem-growth \
  -sMALLOC=none "$lib/libkeel-emscripten-mt.a" -o "$w/em-threads.js"
tc "threads: 4 threads, blocks freed across threads (-mt)" timeout 300 node --no-experimental-fetch "$w/em-threads.js" 100000

# Size promise: the allocator's share of a program calling the 7 functions
# is smaller than emmalloc's at -O2 and -Oz (bench/wasm/size.c).
size_ok() {
  local o=$1 s=$root/bench/wasm/size.c
  emcc "$o" "$s" -DKL_BASELINE -sMALLOC=none -o "$w/sb.js" || return 1
  emcc "$o" "$s" -sMALLOC=emmalloc -o "$w/se.js" || return 1
  emcc "$o" "$s" -sMALLOC=none "$lib/libkeel-emscripten.a" -o "$w/sk.js" || return 1
  local b e k; b=$(stat -c%s "$w/sb.wasm"); e=$(stat -c%s "$w/se.wasm"); k=$(stat -c%s "$w/sk.wasm")
  echo "$o: emmalloc +$((e - b)) bytes, keel +$((k - b)) bytes"
  [ $((k - b)) -lt $((e - b)) ]
}
t "smaller than emmalloc at -O2" size_ok -O2
t "smaller than emmalloc at -Oz" size_ok -Oz
finish
