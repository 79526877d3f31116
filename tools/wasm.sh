#!/usr/bin/env bash
# `make wasm`: builds keel for wasm32 (src/wasm/) with both toolchains:
#   build/wasm/libkeel-emscripten.a   emcc; link with -sMALLOC=none
#   build/wasm/libkeel-wasi.a         clang --target=wasm32-wasi
#   build/wasm/libkeel-emscripten-mt.a  emcc -pthread: the same with one lock
#                                       around the entry points
# Each archive replaces the whole allocation family. A missing toolchain is
# an error naming the Debian packages (tools/deps/test-wasm.txt).
# Env: KEEL_WASM_OUT (output folder, default build/wasm), KEEL_WASM_OPT
# (optimisation flag, default -Os; src/wasm/keel.c inlines its few hot helpers itself).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=${KEEL_WASM_OUT:-$root/build/wasm}
opt=${KEEL_WASM_OPT:--Os}
export NODE_PATH=${NODE_PATH:-/usr/share/nodejs}
sysroot=${WASI_SYSROOT:-/usr}

need() {  # command, packages
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "wasm: '$1' not found; install: apt-get install $2" >&2; exit 1
}
need emcc "emscripten"
need clang "clang lld"
need wasm-ld "lld"
need llvm-ar "llvm"
[ -f "$sysroot/lib/wasm32-wasi/libc.a" ] || { echo "wasm: wasi-libc not found under $sysroot/lib/wasm32-wasi; install: apt-get install wasi-libc libclang-rt-14-dev-wasm32" >&2; exit 1; }

mkdir -p "$out/obj-em" "$out/obj-em-mt" "$out/obj-wasi"
# -fno-builtin: the compiler must not turn calloc's malloc+memset into calloc.
cflags=(-std=gnu11 "$opt" -fno-builtin -Wall -Wextra -Werror)
srcs=(keel sbrk)

for s in "${srcs[@]}"; do
  emcc "${cflags[@]}" -c "$root/src/wasm/$s.c" -o "$out/obj-em/$s.o"
done
rm -f "$out/libkeel-emscripten.a"
emar rcs "$out/libkeel-emscripten.a" "$out"/obj-em/{keel,sbrk}.o

# For emcc -pthread programs: the lock is compiled in under __EMSCRIPTEN_PTHREADS__.
for s in "${srcs[@]}"; do
  emcc -pthread "${cflags[@]}" -c "$root/src/wasm/$s.c" -o "$out/obj-em-mt/$s.o"
done
rm -f "$out/libkeel-emscripten-mt.a"
emar rcs "$out/libkeel-emscripten-mt.a" "$out"/obj-em-mt/{keel,sbrk}.o

# wasi-libc has its own sbrk; only the allocator goes in.
clang --target=wasm32-wasi --sysroot="$sysroot" "${cflags[@]}" -c "$root/src/wasm/keel.c" -o "$out/obj-wasi/keel.o"
rm -f "$out/libkeel-wasi.a"
llvm-ar rcs "$out/libkeel-wasi.a" "$out/obj-wasi/keel.o"

echo "wasm: built $out/libkeel-emscripten.a $out/libkeel-emscripten-mt.a $out/libkeel-wasi.a"
