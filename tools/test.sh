#!/usr/bin/env bash
# `make test`: installs what the tests need, builds the release and the
# checked build, runs every suite in tests/suites/ against each, and ends
# with one line "N passed, N failed". Exit status is non-zero on any failure.
#
# A suite is a bash script tests/suites/NAME.sh. It is called once per build
# with KEEL_BUILD (the build folder), KEEL_VARIANT (release|checked) and
# KEEL_ROOT set, sources tests/lib.sh, and ends with `finish`, which prints
# its own "N passed, N failed". Every suite runs in both builds except those
# release_only names below; a suite may still narrow what it does per build
# by checking KEEL_VARIANT.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
start=$(date +%s)

bash tools/deps.sh test || exit 1

# Suites that run in the release build only, each with why (times on
# 2 cores; the whole `make test` should stay under about 12 minutes):
release_only() {
  case $1 in
    bench) ;;        # measures the release library; its speed in the checked build means nothing
    reliability) ;;  # ~5.5 min, too slow twice; core's stress, churn and fork run in both builds
    sanitizers) ;;   # builds its own clang ASan/TSan/UBSan builds with assertions on: flavour-free
    valgrind) ;;     # ~50 s more under memcheck; core and preload run the checked walkers natively
    wasm) ;;         # builds src/wasm/ with emcc: the native build flavour plays no part
    *) return 1;;
  esac
}

pass=0; fail=0
build_one() {  # dir, cmake args...
  local dir=$1; shift
  echo "== build $dir"
  if ! { cmake -S . -B "$dir" "$@" >"$dir.log" 2>&1 || { mkdir -p "$dir" && false; }; } \
     || ! cmake --build "$dir" -j "$(nproc)" >>"$dir.log" 2>&1; then
    echo "FAIL build $dir (log: $dir.log)"; tail -30 "$dir.log"; return 1
  fi
}

for variant in release checked; do
  if [ $variant = release ]; then dir=build; args=(-DCMAKE_BUILD_TYPE=Release -DKEEL_CHECKED=OFF)
  else dir=build-checked; args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DKEEL_CHECKED=ON); fi
  if ! build_one "$dir" "${args[@]}"; then fail=$((fail + 1)); continue; fi
  for suite in tests/suites/*.sh; do
    [ -e "$suite" ] || continue
    name=$(basename "$suite" .sh)
    if [ $variant = checked ] && release_only "$name"; then
      printf '%-8s %-24s (release build only)\n' $variant "$name"; continue
    fi
    t0=$(date +%s)
    out=$(KEEL_BUILD="$root/$dir" KEEL_VARIANT=$variant KEEL_ROOT="$root" \
          timeout 900 bash "$suite" 2>&1)
    rc=$?
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    p=$(printf '%s' "$line" | sed -E 's/^([0-9]+) passed.*/\1/'); p=${p:-0}
    f=$(printf '%s' "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/'); f=${f:-0}
    if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    pass=$((pass + p)); fail=$((fail + f))
    printf '%-8s %-24s %4d passed %3d failed  (%ds)\n' "$variant" "$name" "$p" "$f" $(( $(date +%s) - t0 ))
    if [ "$f" -ne 0 ]; then printf '%s\n' "$out" | grep -vE '^ok ' | tail -n 60 | sed 's/^/    | /'
    else printf '%s\n' "$out" | grep -A3 '^KNOWN' | sed 's/^/    | /'; fi   # open problems, not counted
  done
done
echo "make test took $(( $(date +%s) - start ))s"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
