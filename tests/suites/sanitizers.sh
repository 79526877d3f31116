#!/usr/bin/env bash
# Sanitizers and checkers (issue 9), bounded for `make test`: keel's sources
# built with clang under ThreadSanitizer, AddressSanitizer and
# UndefinedBehaviorSanitizer (checked build: internal assertions on; no
# malloc override, since each sanitizer brings its own malloc, so these
# test the keel_* API), each running the stress test, first-call/teardown,
# thread churn, fork under load, the heap-adoption check and the fuzz seed
# corpus replayed through the API shadow model; then the release library
# under valgrind memcheck. `make check-san` runs the same at a larger scale
# (tools/check-san.sh). Release variant only; about 1.5 minutes on 2 cores.
source "$KEEL_ROOT/tests/lib.sh"
skip_unless_variant release
source "$KEEL_ROOT/tests/reliability/build.sh"
cd "$KEEL_ROOT" || exit 1
SCALE=${REL_SAN_SCALE:-1}
corpus=("$KEEL_ROOT"/tests/fuzz/corpus/*)
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
export ASAN_OPTIONS="abort_on_error=0 detect_leaks=1 ${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1 ${UBSAN_OPTIONS:-}"
export REL_EXACT=1   # no override: the statistics must balance to the byte
export REL_NO_RSS=1  # shadow memory and valgrind make RSS meaningless here

for san in thread address undefined; do
  case $san in thread) d=build-rel-tsan; n=tsan;; address) d=build-rel-asan; n=asan;; *) d=build-rel-ubsan; n=ubsan;; esac
  t "$n: build keel (checked) and programs" rel_build_san "$KEEL_ROOT/$d" $san || continue
  tc "$n: stress" "$d/stress" 4 $((4000 * SCALE)) $((8 * SCALE)) 1024
  # Sweeps for holes and cold blocks, and the purger's looks at idle heaps,
  # every millisecond: their races with the owners and other threads.
  tc "$n: stress, KEEL_PURGE_DELAY=1" env KEEL_PURGE_DELAY=1 "$d/stress" 4 $((4000 * SCALE)) $((8 * SCALE)) 1024
  tc "$n: first calls and calls after teardown" "$d/firstop" $((100 * SCALE))
  tc "$n: thread churn" "$d/churn" $((1000 * SCALE)) 4
  tc "$n: heap never adopts a dead thread's blocks" "$d/heap_reclaim"
  # ThreadSanitizer and AddressSanitizer do not support fork() from a
  # multi-threaded process well: their runtimes (ASan's allocator serves
  # malloc in these builds) may leave a forked child waiting on an internal
  # lock, about one run in four here. Fork under load runs under UBSan, and
  # against the release library in reliability.sh.
  [ $san = undefined ] && tc "$n: fork under load" "$d/forks" $((20 * SCALE)) 2
  t "$n: fuzz seed corpus (API shadow model, two threads)" "$d/fuzz_replay" "${corpus[@]}"
done

# valgrind memcheck of the release library (keel's own code: reads of
# uninitialized memory, jumps on them, bad system call arguments).
if command -v valgrind >/dev/null; then
  B=$KEEL_ROOT/build-rel/bin
  t "valgrind: build programs" rel_build_progs "$KEEL_BUILD" "$B"
  gcc -std=gnu11 -O1 -g -DFUZZ_STANDALONE -I"$KEEL_ROOT/include" -o "$B/fuzz_replay" "$KEEL_ROOT/tests/fuzz/fuzz_api.c" \
      -L"$KEEL_BUILD" -lkeel -Wl,-rpath,"$KEEL_BUILD" -lpthread
  vg=(valgrind -q --error-exitcode=99 --track-origins=yes)
  unset REL_EXACT
  tc "valgrind: stress" "${vg[@]}" "$B/stress" 2 $((2000 * SCALE)) 4 1024
  tc "valgrind: first calls and teardown" "${vg[@]}" "$B/firstop" $((50 * SCALE))
  tc "valgrind: thread churn" "${vg[@]}" "$B/churn" $((400 * SCALE)) 4
  t "valgrind: fuzz seed corpus" "${vg[@]}" "$B/fuzz_replay" "${corpus[@]}"
else
  t "valgrind installed" false
fi
finish
