#!/usr/bin/env bash
# Linking and packaging (issue 3), in both builds. Installs keel with
# `make install PREFIX=<tmp>` (checked build: `cmake --install`, since make
# would reconfigure build-checked as Release), checks the installed tree,
# pkg-config and the CMake package (every target spelling, via
# tests/linking/consumer), then builds the C test (modes.c), the C++ test
# (cxxnew.cpp) and the jsoncpp/global-constructor scenario (json/) in each
# linking mode:
#   1 LD_PRELOAD   2 -lkeel   3 libkeel.a in a dynamic executable   4 -static
# with a dlopened plugin in modes 2 and 3, and checks the documented ways to
# run valgrind and AddressSanitizer (docs/CHECKERS.md). The CMake package
# and the checkers run in the release build only.
# Budget: about 40-60 s on 2 cores (most of it compiling; 10,000 config
# loads take about 2-3 s per mode).
source "$KEEL_ROOT/tests/lib.sh"
T=$KEEL_ROOT/tests/linking
inst=$KL_TMP/inst
w=$KL_TMP/w; mkdir -p "$w"

# ---- packaging ----------------------------------------------------------
if [ "${KEEL_VARIANT:-release}" = release ]; then
  t "make install PREFIX=tmp" make -C "$KEEL_ROOT" install PREFIX="$inst" BUILD="$KEEL_BUILD"
else
  t "cmake --install (checked build) --prefix tmp" cmake --install "$KEEL_BUILD" --prefix "$inst"
fi
L=$inst/lib
installed() {
  local f
  for f in include/keel.h lib/libkeel.so.1.0.0 lib/libkeel.a lib/pkgconfig/keel.pc \
           lib/cmake/keel/keelConfig.cmake lib/cmake/keel/keelConfigVersion.cmake \
           lib/cmake/keel/keelTargets.cmake lib/libkeel-secure.so.1.0.0 lib/libkeel-debug.so.1.0.0; do
    [ -f "$inst/$f" ] || { echo "missing $f"; return 1; }
  done
  [ -x "$inst/bin/keel" ] || { echo "missing bin/keel"; return 1; }
  [ "$(readlink "$L/libkeel.so.1")" = libkeel.so.1.0.0 ] && [ "$(readlink "$L/libkeel.so")" = libkeel.so.1 ] \
    || { echo "bad links:"; ls -l "$L"; return 1; }
  for v in secure debug; do [ -L "$L/libkeel-$v.so.1" ] && [ -L "$L/libkeel-$v.so" ] || { echo "no $v links"; return 1; }; done
  readelf -d "$L/libkeel.so.1.0.0" | grep -q 'SONAME.*\[libkeel.so.1\]' || { echo "bad SONAME"; return 1; }
  ar t "$L/libkeel.a" | grep -q override || { echo "no override object in libkeel.a"; return 1; }
}
t "installed tree: header, libs, links, SONAME, pc, cmake, bin" installed
export PKG_CONFIG_PATH=$L/pkgconfig
pcok() {
  local libs slibs
  libs=$(pkg-config --libs keel) && slibs=$(pkg-config --static --libs keel) || return 1
  echo "libs: $libs / static: $slibs"
  [[ $libs == *-lkeel* ]] && [[ $slibs == *-lkeel* ]] && [[ $slibs == *-pthread* ]] &&
    [ "$(pkg-config --modversion keel)" = 1.0.0 ] && [ -f "$(pkg-config --variable=includedir keel)/keel.h" ]
}
t "pkg-config --libs / --static --libs keel" pcok

CFLAGS_K=$(pkg-config --cflags keel)
JCFLAGS=$(pkg-config --cflags jsoncpp 2>/dev/null || echo -I/usr/include/jsoncpp)
I="-I$T"

# ---- building every mode ------------------------------------------------
JS=$KEEL_ROOT/build-jsoncpp   # cached across runs (git-ignored)
t "static libjsoncpp.a from Debian's source package" bash "$KEEL_ROOT/tools/deps/jsoncpp-static.sh" "$JS"
build_all() {
  set -e
  cd "$w"
  gcc -O1 -g -shared -fPIC -o plugin.so "$T/plugin.c"
  g++ -std=c++17 -O2 -c "$T/json/registry.cpp" -o registry.o && ar rcs libregistry.a registry.o
  local J="$T/json/app.cpp $T/json/unit_a.cpp $T/json/unit_b.cpp -L. -lregistry"
  # 1: LD_PRELOAD (not linked against keel at all)
  gcc -O1 -g $CFLAGS_K $I -DKL_PLUGIN "$T/modes.c" -o m1 -pthread -ldl
  g++ -std=c++17 -O1 $CFLAGS_K $I "$T/cxxnew.cpp" -o x1 -pthread -ldl
  g++ -std=c++17 -O2 $CFLAGS_K $JCFLAGS $I $J -o j1 -ljsoncpp -pthread -ldl
  # 2: dynamic link, the pkg-config way
  local dyn="$(pkg-config --libs keel) -Wl,-rpath,$L"
  gcc -O1 -g $CFLAGS_K $I -DKL_DIRECT -DKL_PLUGIN "$T/modes.c" -o m2 $dyn -pthread -ldl
  g++ -std=c++17 -O1 $CFLAGS_K $I -DKL_DIRECT "$T/cxxnew.cpp" -o x2 $dyn -pthread
  g++ -std=c++17 -O2 $CFLAGS_K $JCFLAGS $I -DKL_DIRECT $J -o j2 -ljsoncpp $dyn -pthread
  # 3: the archive in a dynamic executable (-u malloc, as keel.pc and
  #    keel::keel-static add it, so override.o always comes in)
  local arc="-Wl,-u,malloc $L/libkeel.a -pthread"
  gcc -O1 -g $CFLAGS_K $I -DKL_DIRECT -DKL_PLUGIN "$T/modes.c" -o m3 $arc -ldl
  g++ -std=c++17 -O1 $CFLAGS_K $I -DKL_DIRECT "$T/cxxnew.cpp" -o x3 $arc
  g++ -std=c++17 -O2 $CFLAGS_K $JCFLAGS $I -DKL_DIRECT $J -o j3 -ljsoncpp $arc
  # 4: fully static, the pkg-config way (its jsoncpp program: build_j4)
  local sta="-static $(pkg-config --static --libs keel)"
  gcc -O1 -g $CFLAGS_K $I -DKL_DIRECT -DKL_FULLY_STATIC "$T/modes.c" -o m4 $sta 2>link4.err
  g++ -std=c++17 -O1 $CFLAGS_K $I -DKL_DIRECT "$T/cxxnew.cpp" -o x4 $sta 2>>link4.err
}
if ! t "build C, C++ and jsoncpp programs in 4 modes" build_all; then finish; exit; fi
# Mode 4's jsoncpp program links a libjsoncpp.a built from Debian's source
# package (Debian ships no archive; tools/deps/jsoncpp-static.sh). Its own
# step: should that source be out of reach, only this program fails.
build_j4() {
  cd "$w" &&
  g++ -std=c++17 -O2 $CFLAGS_K -I"$JS/include" $I -DKL_DIRECT $T/json/app.cpp $T/json/unit_a.cpp $T/json/unit_b.cpp \
    -L. -lregistry -o j4 "$JS/lib/libjsoncpp.a" -static $(pkg-config --static --libs keel) 2>>link4.err
}
t "build the jsoncpp program fully static (libjsoncpp.a from source)" build_j4

linkcheck() {
  cd "$w"
  ! grep -iE 'multiple definition|duplicate' link4.err || return 1
  for b in m4 x4 j4; do file "$b" | grep -q 'statically linked' || { file "$b"; return 1; }; done
  for b in m1 x1 j1 m3 x3 j3; do ! readelf -d "$b" | grep -q 'libkeel' || { echo "$b needs libkeel.so"; return 1; }; done
  for b in m2 x2 j2; do readelf -d "$b" | grep -q 'NEEDED.*libkeel.so.1' || { echo "$b lacks libkeel.so.1"; return 1; }; done
}
t "mode 4 links with no duplicate symbols; each binary links what its mode says" linkcheck

P="env LD_PRELOAD=$L/libkeel.so"
CFG=$T/json/config.json
cd "$w"
tc "1 preload: C family, libc, threads, plugin, exit"  $P ./m1 preload ./plugin.so
tc "1 preload: C++ new/delete forms"                   $P ./x1
tc "1 preload: jsoncpp 10000 loads, RSS flat"          $P ./j1 "$CFG" 10000 2048
tc "2 -lkeel: C family, libc, threads, plugin, exit"   ./m2 dynamic ./plugin.so
tc "2 -lkeel: C++ new/delete forms"                    ./x2
tc "2 -lkeel: jsoncpp 10000 loads, RSS flat"           ./j2 "$CFG" 10000 2048
tc "3 archive: C family, libc, threads, plugin, exit"  ./m3 archive ./plugin.so
tc "3 archive: C++ new/delete forms"                   ./x3
tc "3 archive: jsoncpp 10000 loads, RSS flat"          ./j3 "$CFG" 10000 2048
tc "4 static: C family, libc, threads, exit"           ./m4 static
tc "4 static: C++ new/delete forms"                    ./x4
tc "4 static: jsoncpp 10000 loads, RSS flat"           ./j4 "$CFG" 10000 2048
tc "installed bin/keel finds ../lib (preload)"         "$inst/bin/keel" ./m1 keel-cmd ./plugin.so

# Exit with a detached thread still allocating, and frees in atexit and
# destructors: many runs, none may crash or hang.
exits() {
  local b i
  for b in m2 m3 m4; do
    for i in $(seq 15); do timeout 10 ./$b exit ./plugin.so >/dev/null 2>&1 || { echo "$b run $i: rc $?"; return 1; }; done
  done
  for i in $(seq 15); do timeout 10 $P ./m1 exit ./plugin.so >/dev/null 2>&1 || { echo "m1 run $i: rc $?"; return 1; }; done
}
t "exit while a detached thread allocates: 60 runs, no crash or hang" exits

# The CMake package and the checker recipes do not depend on the build
# flavour: release build only (about 15 s of compiling saved in checked).
[ "${KEEL_VARIANT:-release}" = release ] || { finish; exit; }

# ---- the CMake package, every spelling ---------------------------------
consumer() {
  cmake -S "$T/consumer" -B "$w/consumer" -DCMAKE_PREFIX_PATH="$inst" -DCMAKE_BUILD_TYPE=Release >"$w/c.log" 2>&1 &&
    cmake --build "$w/consumer" -j "$(nproc)" >>"$w/c.log" 2>&1 || { tail -30 "$w/c.log"; return 1; }
  ! grep -q 'lkeel-static' "$w/c.log"
}
t "find_package(keel): configure and build with 4 spellings" consumer
for n in keel_keel keel keel_keel-static keel-static; do
  tc "cmake $n: C" "$w/consumer/c_$n" "$n"
  tc "cmake $n: C++" "$w/consumer/cxx_$n"
done
static_targets() {
  for n in keel_keel-static keel-static; do
    ! readelf -d "$w/consumer/c_$n" | grep -q libkeel || { echo "c_$n needs libkeel.so"; return 1; }
  done
  for n in keel_keel keel; do readelf -d "$w/consumer/c_$n" | grep -q 'libkeel.so.1' || return 1; done
}
t "keel-static targets link the archive, keel targets the .so" static_targets

# ---- memory checkers, as docs/CHECKERS.md says --------------------------
gcc -g -O0 $CFLAGS_K "$T/checkers/bug.c" -o bug_dyn $(pkg-config --libs keel) -Wl,-rpath,$L 2>/dev/null
gcc -g -O0 $CFLAGS_K $I "$T/checkers/who.c" -o who_dyn $(pkg-config --libs keel) -Wl,-rpath,$L 2>/dev/null
vg_default() {  # valgrind's allocator replaces keel's and finds the bugs
  command -v valgrind >/dev/null || { echo "valgrind not installed"; return 1; }
  valgrind -q --leak-check=full ./bug_dyn >out 2>&1
  grep -q 'Invalid write of size 1' out && grep -q 'Invalid read of size 1' out &&
    grep -q 'definitely lost' out || { cat out; return 1; }
  valgrind -q ./who_dyn | grep -q 'keel serves malloc: 0'
}
t "valgrind on a -lkeel program: memcheck's allocator, bugs found" vg_default
vg_keep() {  # somalloc=NONE keeps keel's allocator; a clean run stays clean
  valgrind -q --error-exitcode=9 --soname-synonyms=somalloc=NONE ./who_dyn >out 2>&1 &&
    grep -q 'keel serves malloc: 1' out || { cat out; return 1; }
}
t "valgrind --soname-synonyms=somalloc=NONE: keel serves, no false errors" vg_keep
asan() {
  gcc -g -O1 -fsanitize=address $CFLAGS_K $I "$T/checkers/who.c" -o who_asan $(pkg-config --libs keel) -Wl,-rpath,$L &&
    gcc -g -O0 -fsanitize=address "$T/checkers/bug.c" -o bug_asan $(pkg-config --libs keel) -Wl,-rpath,$L || return 1
  ./who_asan >out 2>&1 && grep -q 'keel serves malloc: 0' out && grep -q 'keel_malloc block is keel: 1' out || { cat out; return 1; }
  ! ./bug_asan >out 2>&1 && grep -q 'heap-buffer-overflow' out || { cat out; return 1; }
}
t "ASan build linking keel: ASan serves malloc, finds the overflow" asan
finish
