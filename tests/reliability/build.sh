# build.sh — sourced by the reliability and sanitizer suites and by
# tools/stress.sh, tools/fuzz.sh and tools/check-san.sh: builds the
# reliability programs and sanitizer/fuzzer builds of keel's sources into
# build-rel*/ folders (git-ignored, never the lead's build/).
#
# Keel's source list is read from the top-level CMakeLists.txt (set(KEEL_
# SOURCES ...)), so these builds follow the library as files are added.
# src/override.c is left out: sanitizer runtimes define malloc themselves,
# and these builds test the keel_* API.
REL_ROOT=${KEEL_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
REL_SRC=$REL_ROOT/tests/reliability

rel_sources() {
  sed -n '/^set(KEEL_SOURCES/,/)/p' "$REL_ROOT/CMakeLists.txt" | tr -d '()' | tr ' ' '\n' \
    | grep -E '^ *src/.*\.c$' | sed 's/^ *//' | grep -v 'override\.c' | sed "s|^|$REL_ROOT/|"
}

# True when $1 is missing or older than any keel source/header or file $2...
rel_stale() {
  local out=$1; shift
  [ -e "$out" ] || return 0
  [ -n "$(find "$REL_ROOT/src" "$REL_ROOT/include" "$@" -newer "$out" -type f 2>/dev/null | head -n 1)" ]
}

# rel_keel_archive DIR CC FLAGS...: DIR/libkeel-san.a from keel's sources.
rel_keel_archive() {
  local dir=$1 cc=$2; shift 2
  local lib=$dir/libkeel-san.a
  mkdir -p "$dir"
  rel_stale "$lib" "$REL_ROOT/CMakeLists.txt" || return 0
  rm -f "$dir"/*.o "$lib"
  local s objs=()
  for s in $(rel_sources); do
    local o
    o=$dir/$(basename "$(dirname "$s")")_$(basename "$s" .c).o
    "$cc" -std=gnu11 -g -D_GNU_SOURCE -DKEEL_VERSION_STRING='"1.0.0"' -I"$REL_ROOT/src" -I"$REL_ROOT/include" \
      -fvisibility=hidden -ftls-model=initial-exec -fno-builtin-malloc -fno-builtin-calloc \
      -fno-builtin-realloc -fno-builtin-free -fPIC "$@" -c "$s" -o "$o" || return 1
    objs+=("$o")
  done
  ar rcs "$lib" "${objs[@]}"
}

# rel_prog OUT SRC CC FLAGS... : one reliability program (links whatever the
# flags name: a libkeel, an archive, -lpthread ...).
rel_prog() {
  local out=$1 src=$2 cc=$3; shift 3
  rel_stale "$out" "$src" "$REL_SRC/rel.h" || return 0
  mkdir -p "$(dirname "$out")"
  "$cc" -std=gnu11 -g -O2 -Wall -Wextra -I"$REL_ROOT/include" -o "$out" "$src" "$@"
}

# The programs linked to a shared libkeel (the release or checked build).
rel_build_progs() {   # BUILD_DIR OUT_DIR
  local b=$1 o=$2 p
  local link=(-L"$b" -lkeel -Wl,-rpath,"$b" -lpthread -ldl)
  for p in stress churn firstop forks exhaust heap_reclaim; do
    rel_prog "$o/$p" "$REL_SRC/$p.c" gcc "${link[@]}" || return 1
  done
  rel_prog "$o/dlopen" "$REL_SRC/dlopen.c" gcc "${link[@]}" || return 1
  rel_stale "$o/dlib.so" "$REL_SRC/dlib.c" && { gcc -std=gnu11 -g -O2 -fPIC -shared -I"$REL_ROOT/include" \
    -o "$o/dlib.so" "$REL_SRC/dlib.c" "${link[@]}" || return 1; }
  return 0
}

# The fault-injection build (KEEL_TEST_MMAP_FAIL, see src/prim/unix.c): an
# archive of keel's sources with KL_FAULT_INJECTION=1 and exhaust.c on it.
rel_build_fault() {   # OUT_DIR
  local o=$1
  rel_keel_archive "$o" gcc -O2 -DKL_FAULT_INJECTION=1 || return 1
  rel_prog "$o/exhaust" "$REL_SRC/exhaust.c" gcc "$o/libkeel-san.a" -lpthread
}

# A sanitizer build: DIR, then the -fsanitize list. Keel's sources in the
# checked configuration (internal assertions on) plus the programs that use
# only the keel_* API.
rel_build_san() {   # DIR SANITIZERS
  local d=$1 san=$2 p
  local f=(-O1 -fsanitize="$san" -fno-sanitize-recover=all -fno-omit-frame-pointer)
  rel_keel_archive "$d" clang "${f[@]}" -DKL_CHECKED=1 || return 1
  for p in stress churn firstop forks heap_reclaim; do
    rel_prog "$d/$p" "$REL_SRC/$p.c" clang "${f[@]}" "$d/libkeel-san.a" -lpthread || return 1
  done
  rel_prog "$d/fuzz_replay" "$REL_ROOT/tests/fuzz/fuzz_api.c" clang "${f[@]}" -DFUZZ_STANDALONE "$d/libkeel-san.a" -lpthread
}

# The libFuzzer binary: keel's sources with coverage, ASan, UBSan and the
# checked build's assertions.
rel_build_fuzzer() {   # DIR
  local d=$1
  local f=(-O1 -g -fno-sanitize-recover=all -fno-omit-frame-pointer)
  rel_keel_archive "$d" clang "${f[@]}" -fsanitize=fuzzer-no-link,address,undefined -DKL_CHECKED=1 || return 1
  rel_prog "$d/fuzz_api" "$REL_ROOT/tests/fuzz/fuzz_api.c" clang "${f[@]}" -fsanitize=fuzzer,address,undefined "$d/libkeel-san.a" -lpthread
}
