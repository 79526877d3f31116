#!/usr/bin/env bash
# `make check-san`: tests/suites/sanitizers.sh (ThreadSanitizer,
# AddressSanitizer, UndefinedBehaviorSanitizer builds of keel's sources and
# valgrind memcheck of the release library) at REL_SAN_SCALE times the
# `make test` scale (default 5), then the fuzz seed corpus under each.
# Builds the release library first if it is missing. About 5 minutes on 2
# cores. Ends "N passed, N failed"; exits non-zero on any failure.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
if [ ! -e build/libkeel.so ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build build -j "$(nproc)" >/dev/null || exit 1
fi
command -v clang >/dev/null || { echo "check-san: clang is needed (tools/deps/test-reliability.txt)"; exit 1; }
KEEL_ROOT=$root KEEL_BUILD=$root/build KEEL_VARIANT=release REL_SAN_SCALE=${REL_SAN_SCALE:-5} \
  bash tests/suites/sanitizers.sh
