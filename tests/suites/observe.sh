#!/usr/bin/env bash
# Observability (issue 8): statistics against known patterns, glibc's
# introspection calls, options (API and bad environment values), the keel
# command (flags, exit codes, signals) and the HTML report (parsed, and
# rendered to PNG once).
source "$KEEL_ROOT/tests/lib.sh"
b=$KEEL_BUILD
cc -O1 -g -fno-builtin -Wno-deprecated-declarations -I"$KEEL_ROOT/include" -o "$KL_TMP/stats" "$KEEL_ROOT/tests/observe/stats.c" \
   -L"$b" -lkeel -Wl,-rpath,"$b" -pthread || { t "build stats test" false; finish; exit; }
tc "statistics and introspection" env STATS_XML="$KL_TMP/info.xml" "$KL_TMP/stats"
tc "peak in use with blocks made by one thread and freed by another (with a heap)" "$KL_TMP/stats" handoff heap
tc "peak in use with blocks made by one thread and freed by another that never allocates" "$KL_TMP/stats" handoff none
t "malloc_info is well-formed XML" python3 -c "import sys,xml.dom.minidom as m; d=m.parse(sys.argv[1]); assert d.documentElement.tagName=='malloc'" "$KL_TMP/info.xml"

# Options, in both builds: a bad value is reported with the variable's name and
# the default it keeps, and the default is what keel_option_get then says.
cc -O1 -g -fno-builtin -I"$KEEL_ROOT/include" -o "$KL_TMP/options" "$KEEL_ROOT/tests/observe/options.c" \
   -L"$b" -lkeel -Wl,-rpath,"$b" || { t "build options test" false; finish; exit; }
bad_value() {  # VAR VALUE DEFAULT-AS-PRINTED DEFAULT-AS-NUMBER
  local out err
  out=$(env "$1=$2" "$KL_TMP/options" 2>"$KL_TMP/opt.err") || { echo "exit status $?"; return 1; }
  err=$(cat "$KL_TMP/opt.err")
  [[ "$err" == "keel: $1=$2 is not valid ("*"); keeping the default $3" ]] || { echo "stderr: $err"; return 1; }
  grep -qx "$1=$4" <<<"$out" || { echo "in force: $(grep "^$1=" <<<"$out")"; return 1; }
}
for case in "KEEL_HUGE_PAGES maybe 0 0" "KEEL_HUGE_PAGES 2 0 0" "KEEL_PURGE_THREAD banana 1 1" "KEEL_PURGE_THREAD -1 1 1" \
            "KEEL_REPORT_INTERVAL abc 5 5" "KEEL_REPORT_INTERVAL -1 5 5" "KEEL_REPORT_INTERVAL 0 5 5" \
            "KEEL_REPORT_INTERVAL 12ms 5 5" "KEEL_REPORT_INTERVAL 99999999999999999999 5 5" \
            "KEEL_PURGE_DELAY -5 10 10" "KEEL_SHOW_STATS banana 0 0" "KEEL_ON_ERROR maybe abort 0" "KEEL_POPULATE 2 1 1"; do
  set -- $case
  t "bad value $1=$2 keeps the default $3" bad_value "$@"
done
t "bad value KEEL_REPORT_INTERVAL= (empty) keeps the default 5" bad_value KEEL_REPORT_INTERVAL "" 5 5
t "bad value KEEL_SHOW_STATS= (empty) keeps the default 0" bad_value KEEL_SHOW_STATS "" 0 0
t "good values are taken silently" bash -c "out=\$(KEEL_REPORT_INTERVAL=7 KEEL_HUGE_PAGES=1 KEEL_PURGE_THREAD=off $KL_TMP/options 2>$KL_TMP/opt.err) && \
  [ ! -s $KL_TMP/opt.err ] && grep -qx KEEL_REPORT_INTERVAL=7 <<<\"\$out\" && grep -qx KEEL_HUGE_PAGES=1 <<<\"\$out\" && grep -qx KEEL_PURGE_THREAD=0 <<<\"\$out\""
t "KEEL_VERBOSE=1 names every option, bad ones at their default" bash -c "KEEL_VERBOSE=1 KEEL_REPORT_INTERVAL=abc KEEL_HUGE_PAGES=x \
  $KL_TMP/options 2>&1 >/dev/null | grep -q 'purge_delay=10ms, show_stats=0, huge_pages=0, purge_thread=1, report_interval=5ms, populate=1'"
rm -f "$KL_TMP"/iv*.html
t "KEEL_REPORT with a bad KEEL_REPORT_INTERVAL still writes the report, sampling every 5 ms" bash -c \
  "KEEL_REPORT=$KL_TMP/iv.html KEEL_REPORT_INTERVAL=abc $KL_TMP/options >/dev/null 2>$KL_TMP/opt.err && \
   grep -q 'KEEL_REPORT_INTERVAL=abc is not valid' $KL_TMP/opt.err && grep -q 'every 5 ms or less' $KL_TMP/iv*.html"
# KEEL_VERBOSE=1 reports the OS refusing memory; without it keel is silent.
# Either way malloc returns NULL with ENOMEM.
t "KEEL_VERBOSE=1 reports an OS refusal (ulimit -v), malloc returns NULL" bash -c \
  "ulimit -v 1000000; KEEL_VERBOSE=1 $KL_TMP/options huge >$KL_TMP/huge.out 2>$KL_TMP/huge.err; \
   grep -qx 'NULL ENOMEM' $KL_TMP/huge.out && grep -q 'keel: the OS refused [0-9]* bytes' $KL_TMP/huge.err"
t "without KEEL_VERBOSE the refusal is silent, malloc returns NULL" bash -c \
  "ulimit -v 1000000; $KL_TMP/options huge >$KL_TMP/huge.out 2>$KL_TMP/huge.err; \
   grep -qx 'NULL ENOMEM' $KL_TMP/huge.out && [ ! -s $KL_TMP/huge.err ]"
skip_ok() { :; }
if [ "$KEEL_VARIANT" = release ]; then
  # Bad option values: reported with the variable and the default kept, never a crash.
  for kv in KEEL_SHOW_STATS=banana KEEL_PURGE_DELAY=-5 KEEL_ON_ERROR=maybe KEEL_VERBOSE=2 KEEL_PURGE_DELAY=12ms; do
    var=${kv%%=*}
    t "bad value $kv" bash -c "out=\$(env $kv LD_PRELOAD=$b/libkeel.so perl -e 'my @a = map { \"x\" x \$_ } 1..100; print scalar(@a)' 2>&1); \
      [ \"\${out##*$'\n'}\" = 100 ] || [ \"\$(echo \"\$out\" | tail -n1)\" = 100 ]; echo \"\$out\" | grep -q \"keel: $var=.*keeping the default\""
  done
  t "KEEL_SHOW_STATS=1 prints the table at exit" bash -c "KEEL_SHOW_STATS=1 LD_PRELOAD=$b/libkeel.so perl -e 'print 1' 2>&1 | grep -q 'keel statistics'"
  t "KEEL_VERBOSE=1 names the options" bash -c "KEEL_VERBOSE=1 LD_PRELOAD=$b/libkeel.so perl -e 1 2>&1 | grep -q 'purge_delay=10ms'"
  # The keel command
  k=$b/keel
  t "keel --help" bash -c "$k --help | grep -q 'usage: keel'"
  t "keel --version" bash -c "$k --version | grep -q '^keel 1\\.'"
  t "keel: missing program" bash -c "$k 2>&1 | grep -q 'no program given'; [ \${PIPESTATUS[0]} -eq 2 ]"
  t "keel: program not found" bash -c "$k /nonexistent/prog 2>/dev/null; [ \$? -eq 127 ]"
  t "keel: bad flag" bash -c "$k --frobnicate true 2>&1 | grep -q \"unknown option '--frobnicate'\""
  t "keel passes the exit status" bash -c "$k sh -c 'exit 7'; [ \$? -eq 7 ]"
  t "keel passes signals" bash -c "$k sh -c 'kill -SEGV \$\$'; [ \$? -eq 139 ]"
  t "keel passes output" bash -c "[ \"\$($k echo hello)\" = hello ]"
  t "keel really preloads keel" bash -c "$k cat /proc/self/maps | grep -q libkeel.so"
  t "keel --stats" bash -c "$k --stats perl -e 'print 1' 2>&1 | grep -q 'keel statistics'"
  t "keel --secure uses the secure build" bash -c "$k --secure cat /proc/self/maps | grep -q libkeel-secure.so"
  t "keel --debug uses the debug build" bash -c "$k --debug cat /proc/self/maps | grep -q libkeel-debug.so"
  # The report: a program that forks and starts threads
  cat > "$KL_TMP/rep.c" <<'C'
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
static void *work(void *a) { for (int r = 0; r < 20; r++) { void *p[500]; for (int i = 0; i < 500; i++) { p[i] = malloc(64 + i * 8); memset(p[i], 1, 64); } usleep(2000); for (int i = 0; i < 500; i++) free(p[i]); } return a; }
int main(void) { pthread_t t[2]; for (int i = 0; i < 2; i++) pthread_create(&t[i], 0, work, 0);
  pid_t c = fork(); if (c == 0) { work(0); exit(0); }
  for (int i = 0; i < 2; i++) pthread_join(t[i], 0); waitpid(c, 0, 0); return 0; }
C
  cc -O1 -o "$KL_TMP/rep" "$KL_TMP/rep.c" -pthread
  rm -f "$KL_TMP"/report*.html
  t "keel --report runs the program" "$k" --report "$KL_TMP/report.html" "$KL_TMP/rep"
  t "the report file exists" test -s "$KL_TMP/report.html"
  t "the forked child wrote its own report" bash -c "ls $KL_TMP/report.*.html"
  t "the report is well-formed XHTML with two SVG charts" python3 - "$KL_TMP/report.html" <<'PY'
import sys, xml.dom.minidom as m
text = open(sys.argv[1]).read().replace('<!DOCTYPE html>', '')
d = m.parseString(text)
svgs = d.getElementsByTagName('svg')
assert len(svgs) == 2, len(svgs)
assert len(d.getElementsByTagName('polyline')) == 3
assert 'Peak bytes in use' in text
PY
  if command -v rsvg-convert >/dev/null; then
    t "the memory chart renders to PNG" bash -c "python3 -c \"import re,sys; print(re.findall(r'<svg.*?</svg>', open(sys.argv[1]).read(), re.S)[0])\" $KL_TMP/report.html > $KL_TMP/c.svg && rsvg-convert $KL_TMP/c.svg -o $KL_TMP/c.png && [ \$(stat -c %s $KL_TMP/c.png) -gt 2000 ]"
  fi
fi
finish
