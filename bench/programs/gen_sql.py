"""gen_sql.py — writes the SQL script of the sqlite3 workload.

    python3 gen_sql.py ROWS > work.sql

An in-memory database: a table of ROWS rows with text, a second table,
an index, grouped aggregates, a join, an update and deletes, all in one
process (sqlite3 :memory:). The last query prints a checksum; the expected
value, computed here, goes to stderr as "expect VALUE".
"""
import sys

rows = int(sys.argv[1])
print("PRAGMA cache_size=-65536;")
print("CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, g INTEGER, s TEXT);")
print("CREATE TABLE u(g INTEGER PRIMARY KEY, name TEXT);")
print("BEGIN;")
for i in range(rows):
    k = (i * 7919) % 100003
    print("INSERT INTO t VALUES(%d,%d,%d,'%s');" % (i, k, i % 97, "v%d-" % k + "y" * (k % 40)))
for g in range(97):
    print("INSERT INTO u VALUES(%d,'group%d');" % (g, g))
print("COMMIT;")
print("CREATE INDEX tk ON t(k);")
print("CREATE INDEX ts ON t(s);")
print("SELECT count(*) FROM (SELECT g, sum(k), max(length(s)) FROM t GROUP BY g);")
print("SELECT count(*) FROM t JOIN u USING(g) WHERE u.name LIKE 'group1%';")
print("UPDATE t SET s = s || 'z' WHERE k % 3 = 0;")
print("DELETE FROM t WHERE k % 5 = 0;")
print("SELECT count(*) FROM (SELECT DISTINCT substr(s, 1, 6) FROM t ORDER BY s);")
print("SELECT sum(k) + sum(length(s)) FROM t;")
ks = [((i * 7919) % 100003, i % 97) for i in range(rows)]
live = [(k, ("v%d-" % k + "y" * (k % 40)) + ("z" if k % 3 == 0 else "")) for k, g in ks if k % 5 != 0]
print("expect %d" % (sum(k for k, s in live) + sum(len(s) for k, s in live)), file=sys.stderr)
