#!/usr/bin/env bash
# Real programs preloaded with keel produce output identical to the system
# allocator's: python3 (json, regex, threads), perl, gcc compiling a file,
# git. Also: a preloaded process really maps libkeel, and a C++ program's
# operator new (plain, sized, aligned) ends up in keel. In both builds (the
# checked one runs the invariant walkers under real programs).
source "$KEEL_ROOT/tests/lib.sh"
lib=$KEEL_BUILD/libkeel.so; src=$KEEL_ROOT/tests/preload
same() {  # name, command...: run with and without keel, compare stdout
  local name=$1; shift
  "$@" >"$KL_TMP/sys.out" 2>&1; local rs=$?
  LD_PRELOAD=$lib "$@" >"$KL_TMP/keel.out" 2>&1; local rk=$?
  t "$name: same output and status on keel" bash -c "[ $rs -eq $rk ] && cmp -s $KL_TMP/sys.out $KL_TMP/keel.out || { diff $KL_TMP/sys.out $KL_TMP/keel.out | head; false; }"
}
PY=$(command -v python3); [ -x /usr/bin/python3 ] && PY=/usr/bin/python3
same "python3 json+regex+threads" "$PY" "$src/work.py"
same "perl hashes and regexes" perl "$src/work.pl"
cd "$KL_TMP"
gcc -O2 -c "$src/prog.c" -o sys.o
LD_PRELOAD=$lib gcc -O2 -c "$src/prog.c" -o keel.o
t "gcc -O2: identical object file on keel" cmp -s sys.o keel.o
LD_PRELOAD=$lib gcc -O2 "$src/prog.c" -o prog
same "gcc-built program" ./prog
gitrun() {  # a deterministic git session in a fresh repository
  rm -rf "$1" && mkdir -p "$1" && cd "$1" || return 1
  export GIT_AUTHOR_NAME=k GIT_AUTHOR_EMAIL=k@example.org GIT_COMMITTER_NAME=k GIT_COMMITTER_EMAIL=k@example.org
  export GIT_AUTHOR_DATE='2026-01-01T00:00:00Z' GIT_COMMITTER_DATE='2026-01-01T00:00:00Z' GIT_CONFIG_NOSYSTEM=1 HOME=$1
  git init -q -b main . && for i in $(seq 1 30); do seq $i $((i * 50)) > f$i.txt; git add f$i.txt; git commit -qm "c$i"; done
  git gc -q && git log --stat --format='%H %s' | md5sum && git fsck --strict 2>&1 | md5sum && git rev-list --all --objects | wc -l
}
out_sys=$(gitrun "$KL_TMP/g1"); out_keel=$(LD_PRELOAD=$lib bash -c "$(declare -f gitrun); gitrun $KL_TMP/g2")
t "git init/commit/gc/log/fsck: same result on keel" test "$out_sys" = "$out_keel" -a -n "$out_sys"
cd "$KL_TMP"
t "a preloaded process maps libkeel" bash -c "LD_PRELOAD=$lib cat /proc/self/maps | grep -q libkeel.so"
cat > newdel.cpp <<'CPP'
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <dlfcn.h>
#include <new>
#include <vector>
#include <string>
struct alignas(256) Big { char x[300]; };
int main() {
  Dl_info di;
  void *m = dlsym(RTLD_DEFAULT, "malloc");
  bool keel = dladdr(m, &di) && std::string(di.dli_fname).find("libkeel") != std::string::npos;
  int *p = new int[100]; delete[] p;
  Big *b = new Big; bool al = (reinterpret_cast<uintptr_t>(b) % 256) == 0; delete b;
  void *q = ::operator new(64, std::align_val_t(4096)); bool al2 = (reinterpret_cast<uintptr_t>(q) % 4096) == 0;
  ::operator delete(q, 64, std::align_val_t(4096));
  std::vector<std::string> v; for (int i = 0; i < 10000; i++) v.push_back(std::string(i % 100, 'x'));
  int *n = new (std::nothrow) int[10]; delete[] n;
  printf("%d %d %d %zu\n", keel, al, al2, v.size());
  return !(keel && al && al2);
}
CPP
t "C++ new/delete (sized, aligned 256 and 4096, nothrow) on keel" bash -c \
  "g++ -O1 -std=c++17 newdel.cpp -o newdel -ldl && LD_PRELOAD=$lib ./newdel | grep -q '^1 1 1 10000'"
finish
