# programs.sh — real programs on keel (sourced by tests/suites/reliability.sh
# and tools/stress.sh). Each check runs a program with LD_PRELOAD=libkeel.so
# and on the system allocator, and compares what they produce.
#   REL_LIB    the libkeel.so to preload
#   REL_SCALE  1 for `make test`, larger for `make stress`
#   REL_WORK   a scratch folder
# Each function returns 0 when the keel run matched the glibc run and keel
# really served the program (KEEL_SHOW_STATS at exit counted its calls).

rel_on_keel() { LD_PRELOAD=$REL_LIB "$@"; }

# True if the stats table keel printed at exit (KEEL_SHOW_STATS=1) shows at
# least $2 malloc calls: proof that the program ran on keel, not on glibc.
rel_served() {
  local calls
  calls=$(grep -E '^  calls +malloc' "$1" | tail -n 1 | sed -E 's/.*malloc ([0-9]+).*/\1/')
  [ -n "$calls" ] && [ "$calls" -ge "$2" ] || { echo "keel did not serve the program (malloc calls: ${calls:-none})"; return 1; }
}

# ---- sqlite3: recursive CTEs, indexes, joins, GROUP BY, window functions
rel_sqlite_sql() {
  local rows=$((300000 * REL_SCALE))
  cat <<SQL
PRAGMA cache_size = -65536;
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, grp TEXT, v REAL, s TEXT, b BLOB);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $rows)
INSERT INTO t SELECT i, (i * 7919) % 100003, 'g' || (i % 997), (i % 1000) / 7.0,
  printf('%08d-%s', i, substr('abcdefghijklmnopqrstuvwxyz', 1 + i % 26)), zeroblob(i % 300) FROM c;
CREATE INDEX t_k ON t(k);
CREATE INDEX t_grp ON t(grp, v);
SELECT count(*), sum(k), total(v), max(length(s)), sum(length(b)) FROM t;
SELECT grp, count(*), round(avg(v), 4), min(k), max(k) FROM t GROUP BY grp ORDER BY count(*) DESC, grp LIMIT 20;
SELECT k, count(*) FROM t WHERE k BETWEEN 1000 AND 1200 GROUP BY k HAVING count(*) > 1 ORDER BY k LIMIT 30;
CREATE TABLE u AS SELECT grp, group_concat(id, ',') AS ids, sum(v) AS sv FROM t WHERE id % 13 = 0 GROUP BY grp;
SELECT count(*), sum(length(ids)), round(sum(sv), 3) FROM u;
SELECT a.grp, count(*) FROM t a JOIN u b ON a.grp = b.grp WHERE a.id % 101 = 0 GROUP BY a.grp ORDER BY 2 DESC, 1 LIMIT 10;
SELECT id, k, sum(k) OVER (PARTITION BY grp ORDER BY id ROWS 50 PRECEDING) FROM t WHERE id % 9973 = 0 ORDER BY id;
WITH RECURSIVE fib(n, a, b) AS (SELECT 1, 0, 1 UNION ALL SELECT n + 1, b, (a + b) % 1000000007 FROM fib WHERE n < 200000)
SELECT max(n), sum(a) % 1000000007 FROM fib;
UPDATE t SET s = s || s, b = zeroblob(length(b) * 3) WHERE id % 5 = 0;
DELETE FROM t WHERE id % 3 = 0;
SELECT count(*), sum(length(s)), sum(length(b)) FROM t;
SELECT group_concat(x, '') FROM (SELECT substr(s, 1, 3) AS x FROM t ORDER BY s DESC LIMIT 50);
VACUUM;
PRAGMA integrity_check;
SQL
}
rel_sqlite() {
  local w=$REL_WORK/sqlite; rm -rf "$w"; mkdir -p "$w"
  rel_sqlite_sql > "$w/q.sql"
  sqlite3 "$w/glibc.db" < "$w/q.sql" > "$w/glibc.out" 2>&1 || { echo "sqlite3 on glibc failed"; tail "$w/glibc.out"; return 1; }
  KEEL_SHOW_STATS=1 rel_on_keel sqlite3 "$w/keel.db" < "$w/q.sql" > "$w/keel.out" 2> "$w/keel.err" || { echo "sqlite3 on keel failed"; tail "$w/keel.err"; return 1; }
  cmp "$w/glibc.out" "$w/keel.out" || { diff "$w/glibc.out" "$w/keel.out" | head; return 1; }
  grep -qx ok "$w/keel.out" || { echo "integrity_check did not say ok"; return 1; }
  echo "sqlite3: $(wc -l < "$w/keel.out") result lines identical on glibc and keel"
  rel_served "$w/keel.err" 100000
}

# ---- redis-server under redis-benchmark load
# A deterministic dataset goes into db 0 (strings of many sizes, lists,
# sets, hashes, sorted sets, counters, appends, deletes); redis-benchmark
# then loads db 1 for a bounded number of requests. Db 1 is flushed and the
# digest of what is left (DEBUG DIGEST), the key count and a sample of
# values must match the same run on glibc.
rel_redis_data() {   # in RESP, which --pipe needs for values over 64 KiB
  perl -e '
    sub cmd { my $s = "*" . scalar(@_) . "\r\n"; $s .= "\$" . length($_) . "\r\n$_\r\n" for @_; print $s; }
    my $n = shift;
    for my $i (0 .. $n - 1) {
      my $len = $i % 50 == 0 ? 20000 + ($i * 37) % 200000 : 1 + ($i * 131) % 700;
      cmd("SET", "str:$i", substr(("$i-" x (1 + int($len / (length($i) + 1)))), 0, $len));
      cmd("RPUSH", "list:" . $i % 500, "a$i", "b" . $i * 2, "c" . $i * 3) if $i % 3 == 0;
      cmd("SADD", "set:" . $i % 300, "m$i", "m" . $i % 77) if $i % 4 == 0;
      cmd("HSET", "hash:" . $i % 200, "f$i", "v$i", "g$i", "x" x (1 + $i % 300)) if $i % 5 == 0;
      cmd("ZADD", "zset:" . $i % 100, $i % 1000, "z$i") if $i % 6 == 0;
      cmd("INCRBY", "ctr:" . $i % 50, $i) if $i % 7 == 0;
      cmd("APPEND", "str:" . int($i / 2), "tail$i") if $i % 11 == 0;
      cmd("DEL", "str:" . int($i / 3)) if $i % 13 == 0;
      cmd("LPOP", "list:" . $i % 500) if $i % 17 == 0;
    }' "$((20000 * REL_SCALE))"
}
rel_redis_run() {   # OUT_PREFIX PRELOAD(0|1)
  local out=$1 pre=$2 port i try pid
  # A random high port; another one if it is taken (the server then exits).
  for try in 1 2 3 4 5; do
    port=$(( 20000 + RANDOM % 30000 ))
    local srv=(redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --enable-debug-command yes
               --daemonize no --protected-mode yes --loglevel warning --dir "$REL_WORK/redis")
    if [ "$pre" = 1 ]; then KEEL_SHOW_STATS=1 LD_PRELOAD=$REL_LIB "${srv[@]}" > "$out.log" 2>&1 &
    else "${srv[@]}" > "$out.log" 2>&1 & fi
    pid=$!
    REL_REDIS_PID=$pid
    for i in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break
    kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=
  done
  [ -n "$pid" ] || { echo "redis did not start"; cat "$out.log"; return 1; }
  rel_redis_data | redis-cli -p "$port" --pipe > "$out.pipe" 2>&1 || { echo "load failed"; tail -3 "$out.pipe"; }
  redis-benchmark -p "$port" --dbnum 1 -q -n $((20000 * REL_SCALE)) -c 20 -P 8 -r 5000 -d 512 \
    -t set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,lrange_100,mset > "$out.bench" 2>&1
  redis-benchmark -p "$port" --dbnum 1 -q -n $((5000 * REL_SCALE)) -c 10 -r 1000 -d 65536 -t set,get >> "$out.bench" 2>&1
  redis-cli -p "$port" -n 1 dbsize > "$out.db1size"
  redis-cli -p "$port" -n 1 flushdb > /dev/null
  {
    redis-cli -p "$port" dbsize
    redis-cli -p "$port" debug digest
    for i in 0 1 49 50 100 777 1000 4999 9999 12345 19999; do redis-cli -p "$port" get "str:$i" | md5sum; done
    redis-cli -p "$port" lrange list:7 0 -1
    redis-cli -p "$port" smembers set:8 | sort
    redis-cli -p "$port" hgetall hash:15 | paste - - | sort | md5sum   # hash order is seeded per process
    redis-cli -p "$port" zrange zset:42 0 -1 withscores
    redis-cli -p "$port" mget ctr:1 ctr:2 ctr:49
  } > "$out.state"
  redis-cli -p "$port" shutdown nosave > /dev/null 2>&1
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  REL_REDIS_PID=
  return 0
}
rel_redis() {
  local w=$REL_WORK/redis; rm -rf "$w"; mkdir -p "$w"
  REL_REDIS_PID=
  trap '[ -n "$REL_REDIS_PID" ] && kill -9 $REL_REDIS_PID 2>/dev/null' RETURN
  rel_redis_run "$w/glibc" 0 || return 1
  rel_redis_run "$w/keel" 1 || return 1
  cmp "$w/glibc.state" "$w/keel.state" || { diff "$w/glibc.state" "$w/keel.state" | head; return 1; }
  [ "$(cat "$w/keel.db1size")" -gt 0 ] || { echo "redis-benchmark wrote nothing"; cat "$w/keel.bench"; return 1; }
  grep -qi "error" "$w/keel.bench" && { echo "benchmark errors:"; grep -i error "$w/keel.bench" | head; return 1; }
  echo "redis: $(head -1 "$w/keel.state") keys, digest $(sed -n 2p "$w/keel.state"), identical on glibc and keel;" \
       "benchmark db held $(cat "$w/keel.db1size") keys; $(grep -c 'requests per second' "$w/keel.bench") benchmark tests"
  rel_served "$w/keel.log" 100000
}

# ---- python3: a slice of CPython's own test suite (libpython3.11-testsuite),
# with PYTHONMALLOC=malloc so that every object comes from malloc, not pymalloc.
REL_PY_TESTS="test_json test_re test_dict test_list test_set test_unicode test_collections test_heapq
 test_itertools test_functools test_sort test_string test_textwrap test_difflib test_pickle test_zlib
 test_bytes test_tuple test_deque test_array test_struct test_decimal test_fractions test_statistics"
rel_python() {
  local py=/usr/bin/python3.11 w=$REL_WORK/python
  rm -rf "$w"; mkdir -p "$w"
  [ -x "$py" ] || py=/usr/bin/python3
  local tests=$REL_PY_TESTS
  # (test_sqlite3 and test_str fail here on glibc too; test_io, test_threading
  # and test_zipfile take minutes: left out.)
  [ "$REL_SCALE" -gt 1 ] && tests="$tests test_ast test_builtin test_class test_codecs test_csv test_datetime test_enum
    test_format test_gc test_generators test_hash test_math test_memoryview test_operator test_random
    test_types test_weakref test_xml_etree"
  if ! "$py" -c 'import test.support' 2>/dev/null; then
    echo "python test suite missing (install libpython3.11-testsuite)"; return 1
  fi
  # shellcheck disable=SC2086
  (cd "$w" && PYTHONMALLOC=malloc "$py" -m test -q $tests > glibc.out 2>&1); local rg=$?
  # shellcheck disable=SC2086
  # No KEEL_SHOW_STATS here: some tests compare a child's stderr to ''.
  (cd "$w" && PYTHONMALLOC=malloc LD_PRELOAD=$REL_LIB "$py" -m test -q $tests > keel.out 2>&1); local rk=$?
  echo "python: glibc exit $rg, keel exit $rk; $(grep -E '^(Tests result|Total tests|== Tests result)' "$w/keel.out" | tr '\n' ' ')"
  [ $rk -eq $rg ] || { tail -30 "$w/keel.out"; return 1; }
  [ $rk -eq 0 ] || { echo "the slice fails on glibc too:"; tail -5 "$w/glibc.out"; return 1; }
  PYTHONMALLOC=malloc KEEL_SHOW_STATS=1 LD_PRELOAD=$REL_LIB "$py" -c 'import json; json.dumps(list(range(100000)))' 2> "$w/served.err"
  rel_served "$w/served.err" 100000
}

# ---- gcc, perl, git at a larger scale than the preload suite
rel_gcc() {
  local w=$REL_WORK/gcc; rm -rf "$w"; mkdir -p "$w/g" "$w/k"
  local f n=0
  for f in "$REL_ROOT"/src/*.c "$REL_ROOT"/src/prim/unix.c "$REL_ROOT"/tests/reliability/*.c "$REL_ROOT"/tests/fuzz/*.c; do
    local o; o=$(basename "$f" .c)_$n.o; n=$((n + 1))
    for r in $(seq "$REL_SCALE"); do
      gcc -std=gnu11 -O2 -g -D_GNU_SOURCE -DKEEL_VERSION_STRING='"1.0.0"' -I"$REL_ROOT/src" -I"$REL_ROOT/include" -c "$f" -o "$w/g/$o" 2>/dev/null || return 1
      LD_PRELOAD=$REL_LIB gcc -std=gnu11 -O2 -g -D_GNU_SOURCE -DKEEL_VERSION_STRING='"1.0.0"' -I"$REL_ROOT/src" -I"$REL_ROOT/include" -c "$f" -o "$w/k/$o" 2>"$w/err" || { cat "$w/err"; return 1; }
    done
  done
  # -g embeds no paths that differ between the two runs (same source paths).
  local d; d=$(cd "$w" && for o in g/*.o; do cmp -s "$o" "k/${o#g/}" || echo "${o#g/}"; done)
  [ -z "$d" ] || { echo "objects differ: $d"; return 1; }
  echo "gcc: $n files compiled -O2 -g ($REL_SCALE x), identical objects on glibc and keel"
}
rel_perl() {
  local w=$REL_WORK/perl; rm -rf "$w"; mkdir -p "$w"
  local n=$((300000 * REL_SCALE))
  cat > "$w/p.pl" <<'PERL'
use strict; use warnings;
my $n = shift; my %h; my @a; my $s = '';
for my $i (1 .. $n) {
  my $k = sprintf("k%07d", ($i * 7919) % $n);
  $h{$k} .= chr(65 + $i % 26) x (1 + $i % 40);
  push @a, [$i, $k, length $h{$k}];
  $s .= $k if $i % 97 == 0;
  delete $h{sprintf("k%07d", $i - 1000)} if $i % 5 == 0 && $i > 1000;
}
my @sorted = sort { $b->[2] <=> $a->[2] || $a->[1] cmp $b->[1] } @a;
my $cnt = () = $s =~ /k00[0-9]{2}[13579]/g;
(my $t = $s) =~ s/(\d)(\d)/$2$1/g;
my %w; $w{$_}++ for split /[02468]/, $s;
printf "%d keys, top %s %d, matches %d, words %d, len %d\n", scalar(keys %h), $sorted[0][1], $sorted[0][2], $cnt, scalar(keys %w), length $t;
print join(",", map { "$_->[1]:$_->[2]" } @sorted[0 .. 20]), "\n";
print unpack("%32C*", join "", map { $h{$_} } sort keys %h), "\n";
PERL
  perl "$w/p.pl" "$n" > "$w/glibc.out" 2>&1 || { cat "$w/glibc.out"; return 1; }
  KEEL_SHOW_STATS=1 LD_PRELOAD=$REL_LIB perl "$w/p.pl" "$n" > "$w/keel.out" 2> "$w/keel.err" || { cat "$w/keel.err" | tail; return 1; }
  cmp "$w/glibc.out" "$w/keel.out" || { diff "$w/glibc.out" "$w/keel.out" | head; return 1; }
  echo "perl: $(head -1 "$w/keel.out") (identical)"
  rel_served "$w/keel.err" 100000
}
rel_git() {
  local w=$REL_WORK/git; rm -rf "$w"; mkdir -p "$w"
  local n=$((150 * REL_SCALE)) mode
  for mode in glibc keel; do
    local r=$w/$mode pre=
    [ $mode = keel ] && pre=$REL_LIB
    mkdir -p "$r"
    (
      cd "$r" || exit 1
      export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@e GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@e
      export GIT_AUTHOR_DATE='2026-01-01T00:00:00Z' GIT_COMMITTER_DATE='2026-01-01T00:00:00Z'
      export LD_PRELOAD=$pre GIT_CONFIG_NOSYSTEM=1 HOME=$r
      git init -q -b main . && git config gc.auto 0 || exit 1
      for i in $(seq "$n"); do
        for f in $(seq 0 7); do seq $((i * f)) $((i * f + i % 50 + 20)) > "f$f.txt"; done
        printf 'line %d\n' $(seq "$i") > "grow.txt"
        git add -A && git commit -q -m "commit $i" || exit 1
        [ $((i % 40)) -eq 0 ] && { git checkout -q -b "b$i" && git checkout -q main; }
      done
      git gc -q --aggressive 2>/dev/null || exit 1
      git fsck --strict --no-progress 2>&1 || exit 1
      git rev-parse HEAD
      git log --stat --format='%H %s' | md5sum
      git diff --stat HEAD~20 HEAD | tail -1
      git rev-list --all --objects | wc -l
      git blame -s grow.txt | md5sum
    ) > "$w/$mode.out" 2>&1 || { echo "git on $mode failed"; tail "$w/$mode.out"; return 1; }
  done
  cmp "$w/glibc.out" "$w/keel.out" || { diff "$w/glibc.out" "$w/keel.out" | head; return 1; }
  echo "git: $n commits, gc --aggressive, fsck --strict, log/blame/diff identical (HEAD $(head -c 12 "$w/keel.out"))"
}
