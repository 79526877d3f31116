#!/usr/bin/env python3
"""run.py — the driver of `make bench` (called by bench/bench.sh).

Runs every workload under every allocator, alternating allocators inside
each workload (A B C D E, A B C D E, ...) so that drift of a shared machine
hits them all alike, and reports medians and each allocator's ratio to keel.
Per run it measures wall time, user+sys time and peak RSS of the child (and
its reaped children) from os.wait4, so nothing else in this process counts.
It never asserts a speed: it fails only when a workload's own content check
fails or a program does not produce its expected result.

Environment (all optional):
  QUICK=1        reduced set and scale, 3 rounds (under 3 minutes)
  SMOKE=1        tiny scale, 1 round, for `make test` (no callgrind repeats)
  ONLY=name      one workload (larson, xmalloc, ..., python, gcc, sqlite,
                 redis, fastpath); several with commas
  ALLOCATORS=..  space- or comma-separated subset of glibc mimalloc jemalloc
                 tcmalloc keel, or the variant keel-thp (keel with
                 KEEL_HUGE_PAGES=1), which runs only when named
  THREADS="1 2 4" thread counts for threaded workloads
  ROUNDS=n       rounds (default 5, QUICK 3, SMOKE 1)
  OUTDIR=dir     where the .md/.svg go (default bench/results)
  KBENCH_BIN=dir where bench.sh put kbench and fastpath
Writes OUTDIR/{full,quick,partial,smoke}.md and .svg, a JSON of every run in
OUTDIR/raw/, and for a full run bench/RESULTS.md.
"""
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
env = os.environ
QUICK = env.get("QUICK", "") not in ("", "0")
SMOKE = env.get("SMOKE", "") not in ("", "0")
ONLY = [w for w in env.get("ONLY", "").replace(",", " ").split() if w]
KEPT = "<!-- sections below are kept across full runs of run.py -->"
ALL_ALLOCS = ["glibc", "mimalloc", "jemalloc", "tcmalloc", "keel"]
# Variants run only when named in ALLOCATORS: keel with an option set.
VARIANTS = {"keel-thp": ("keel", {"KEEL_HUGE_PAGES": "1"})}
ALLOCS = [a for a in env.get("ALLOCATORS", "").replace(",", " ").split() if a] or ALL_ALLOCS
ROUNDS = int(env.get("ROUNDS", "1" if SMOKE else "3" if QUICK else "5"))
BIN = env.get("KBENCH_BIN", os.path.join(ROOT, "build-bench"))
OUTDIR = env.get("OUTDIR", os.path.join(BENCH, "results"))
MODE = "smoke" if SMOKE else "quick" if QUICK else "full"
if MODE == "full" and (ONLY or env.get("ALLOCATORS") or ROUNDS < 3):
    MODE = "partial"
DEFAULT_THREADS = "1 2" if SMOKE else "1 4" if QUICK else "1 2 4"
THREADS = [int(t) for t in env.get("THREADS", DEFAULT_THREADS).replace(",", " ").split()]

# Native workloads: name -> (scale full, scale quick, threaded, what it models).
# Scales are set so a full run takes about 0.3-2 s per run on a 2-core VM.
NATIVE = {
    "larson": (150, 15, True, "server churn: threads replace random blocks in shared slots; most frees remote"),
    "xmalloc": (60, 8, True, "producer/consumer: half the threads allocate, half free"),
    "false-sharing": (600, 150, True, "cache-scratch/thrash: small blocks handed between threads, written hard"),
    "alloc-test": (200, 25, True, "mixed sizes 16 B-64 KiB, 1,000 live per thread, 1 in 16 calloc"),
    "sh8": (80, 10, True, "sh6/sh8bench: 40 sizes, freed forward/reverse/interleaved, half by a neighbour thread"),
    "tight": (40, 10, True, "glibc-simple/-thread: allocate, free the block from 32 steps back"),
    "large": (2, 1, False, "malloc-large: 64 KiB-32 MiB, 8 live, every page touched"),
    "realloc": (20, 5, False, "strings grown 1-64 bytes at a time, arrays grown by doubling"),
    "memeff": (8, 3, False, "fill, free 90% at random, allocate larger sizes, free all; RSS 300 ms later"),
}
# Real programs: name -> (full, quick, smoke) size parameter.
PROGRAMS = {
    "python": (6, 2, 1),        # pyload.py rounds per thread (4 threads)
    "gcc": (250, 80, 20),       # generated functions compiled at -O2
    "sqlite": (150000, 30000, 2000),  # rows
    "redis": (150000, 40000, 2000),   # requests per redis-benchmark test
}
PROGRAM_NOTES = {
    "python": "python3: JSON encode/decode, dicts, strings, 4 threads",
    "gcc": "gcc -O2 on a generated C file (cc1 under the allocator)",
    "sqlite": "sqlite3 :memory: inserts, indexes, group-by, join, update, delete",
    "redis": "redis-server under redis-benchmark (SET/GET/LPUSH/LPOP, 256 B values, loopback)",
}


def find_lib(soname):
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    except OSError:
        out = ""
    for line in out.splitlines():
        if line.strip().startswith(soname + " ") and "x86-64" in line and "=>" in line:
            return line.split("=>")[-1].strip()
    for d in ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"):
        p = os.path.join(d, soname)
        if os.path.exists(p):
            return p
    return None


def preload_of(alloc):
    alloc = VARIANTS.get(alloc, (alloc,))[0]
    if alloc == "glibc":
        return ""
    if alloc == "keel":
        p = env.get("KEEL_LIB", os.path.join(ROOT, "build", "libkeel.so"))
        return p if os.path.exists(p) else None
    return find_lib({"mimalloc": "libmimalloc.so.2", "jemalloc": "libjemalloc.so.2",
                     "tcmalloc": "libtcmalloc_minimal.so.4"}[alloc])


def clean_env(alloc=None):
    e = dict(os.environ)
    e.pop("LD_PRELOAD", None)
    e.update(VARIANTS.get(alloc, (None, {}))[1])
    return e


class Run:
    """One measured child, started through bench/runner.c (kbrun), which
    sets LD_PRELOAD for the child only and reports wall, user+sys and peak
    RSS from wait4 (see runner.c for why python cannot fork it itself)."""

    def __init__(self, cmd, alloc, stdin=None, timeout=600, wait=True):
        self.out = tempfile.TemporaryFile()
        self.err = tempfile.TemporaryFile()
        fd, self.resfile = tempfile.mkstemp(prefix="kbrun-")
        os.close(fd)
        self.p = subprocess.Popen([os.path.join(BIN, "kbrun"), self.resfile, preload_of(alloc)] + cmd,
                                  env=clean_env(alloc), stdin=stdin or subprocess.DEVNULL,
                                  stdout=self.out, stderr=self.err, start_new_session=True)
        self.timeout = timeout
        if wait:
            self.finish()

    def finish(self):
        try:
            self.p.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.p.pid, signal.SIGKILL)  # kbrun and the child it runs
            self.p.wait()
        try:
            with open(self.resfile) as f:
                w, c, m, rc = f.read().split()
            self.wall, self.cpu, self.rss_kib, self.rc = float(w), float(c), int(m), int(rc)
        except (OSError, ValueError):
            self.wall = self.cpu = 0.0; self.rss_kib = 0; self.rc = self.p.returncode or 124
        os.unlink(self.resfile)
        self.out.seek(0); self.err.seek(0)
        self.stdout = self.out.read().decode(errors="replace")
        self.stderr = self.err.read().decode(errors="replace")
        return self


def metrics_of(text):
    m = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "metric":
            m[parts[1]] = float(parts[2])
    return m


# ---- programs: set-up once, then one measured run ---------------------------
class Programs:
    def __init__(self, tmp):
        self.tmp = tmp
        self.prepared = {}

    def param(self, name):
        full, quick, smoke = PROGRAMS[name]
        return smoke if SMOKE else quick if QUICK else full

    def prepare(self, name):
        if name in self.prepared:
            return
        n = self.param(name)
        # program inputs generated once per run: output file and generator
        generated = {"gcc": ("big.c", "gen_c.py"), "sqlite": ("work.sql", "gen_sql.py")}
        if name in generated:
            out, gen = generated[name]
            with open(os.path.join(self.tmp, out), "w") as f:
                r = subprocess.run([sys.executable, os.path.join(BENCH, "programs", gen), str(n)],
                                   stdout=f, stderr=subprocess.PIPE, text=True, check=True)
            self.prepared[name] = r.stderr.split()[-1]
        else:
            self.prepared[name] = None

    def run(self, name, alloc):
        """Returns (Run-like dict, error or None)."""
        self.prepare(name)
        n = self.param(name)
        if name == "python":
            py = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
            r = Run([py, os.path.join(BENCH, "programs", "pyload.py"), str(n), "4"], alloc)
            return r, None if r.rc == 0 and "ok pyload" in r.stdout else "python: " + (r.stderr[-300:] or "rc %d" % r.rc)
        if name == "gcc":
            exe = os.path.join(self.tmp, "big-%s" % alloc)
            r = Run(["gcc", "-O2", "-o", exe, os.path.join(self.tmp, "big.c")], alloc)
            if r.rc != 0:
                return r, "gcc: " + r.stderr[-300:]
            got = subprocess.run([exe], capture_output=True, text=True).stdout.strip()
            os.unlink(exe)
            return r, None if got == self.prepared[name] else "gcc: program printed %r, expected %s" % (got, self.prepared[name])
        if name == "sqlite":
            with open(os.path.join(self.tmp, "work.sql")) as f:
                r = Run(["sqlite3", ":memory:"], alloc, stdin=f)
            last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
            return r, None if r.rc == 0 and last == self.prepared[name] else "sqlite: got %r, expected %s %s" % (last, self.prepared[name], r.stderr[-200:])
        if name == "redis":
            return self.redis(alloc, n)
        raise KeyError(name)

    def redis(self, alloc, n):
        s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
        srv = Run(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--protected-mode", "yes", "--daemonize", "no"],
                  alloc, timeout=60, wait=False)
        cli = ["redis-cli", "-h", "127.0.0.1", "-p", str(port)]
        for _ in range(200):
            if subprocess.run(cli + ["ping"], capture_output=True, text=True, env=clean_env()).stdout.strip() == "PONG":
                break
            time.sleep(0.05)
        b0 = time.perf_counter()
        bench = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-q", "--csv",
                                "-n", str(n), "-c", "20", "-P", "8", "-d", "256", "-r", "100000",
                                "-t", "set,get,lpush,lpop"], capture_output=True, text=True, env=clean_env())
        bwall = time.perf_counter() - b0
        dbsize = subprocess.run(cli + ["dbsize"], capture_output=True, text=True, env=clean_env()).stdout.strip()
        subprocess.run(cli + ["shutdown", "nosave"], capture_output=True, env=clean_env())
        r = srv.finish()
        r.wall = bwall  # the server's CPU and RSS come from kbrun; wall is the client's run
        rps = []
        for line in bench.stdout.splitlines():
            parts = line.replace('"', "").split(",")
            if len(parts) >= 2:
                try:
                    rps.append(float(parts[1]))
                except ValueError:
                    pass
        r.stdout = "metric requests_per_s %.0f\n" % (statistics.mean(rps) if rps else 0)
        err = None
        if bench.returncode != 0 or len(rps) != 4:
            err = "redis-benchmark failed: %s %s" % (bench.stdout[-200:], bench.stderr[-200:])
        elif not dbsize.isdigit() or int(dbsize) == 0:
            err = "redis: DBSIZE %r after the run" % dbsize
        elif r.rc != 0:
            err = "redis-server exited %d: %s" % (r.rc, r.stderr[-200:])
        return r, err


# ---- fast path: callgrind instruction counts -------------------------------
def callgrind_count(alloc, mode, n):
    e = clean_env(alloc)
    if preload_of(alloc):
        e["LD_PRELOAD"] = preload_of(alloc)
    r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                        os.path.join(BIN, "fastpath"), mode, str(n)], env=e, capture_output=True, text=True)
    for line in r.stderr.splitlines():
        if "Collected :" in line:
            return int(line.split(":")[-1].strip())
    raise RuntimeError("callgrind gave no count for %s %s: %s" % (alloc, mode, r.stderr[-300:]))


def fastpath(allocs):
    n = 2000 if SMOKE else 200000
    res = {}
    for alloc in allocs:
        for mode in ("pair", "batch"):
            try:
                res[(alloc, mode)] = (callgrind_count(alloc, mode, n) - callgrind_count(alloc, mode, 0)) / n
            except Exception as ex:  # a missing valgrind must not hide the other figures
                print("fastpath: %s" % ex, file=sys.stderr)
                res[(alloc, mode)] = None
    return res


# ---- reporting --------------------------------------------------------------
def med(xs):
    return statistics.median(xs) if xs else None


def fmt_ratio(v, k):
    if v is None or not k:
        return ""
    return " (%.2f×)" % (v / k)


def load_avg():
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


LOAD_START = load_avg()


def git_state():
    git = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %cd", "--date=short"],
                         capture_output=True, text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "src", "include"],
                           capture_output=True, text=True).stdout.strip()
    return git, dirty


# The commit the library was built from, taken when the run starts: the
# tree may change during a run of a quarter of an hour.
GIT_START = git_state()


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = "%.1f GiB" % (int(line.split()[1]) / 1048576)
    except OSError:
        pass

    def pkg(p):
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", p], capture_output=True, text=True)
        return r.stdout.strip() or "?"
    libc = platform.libc_ver()[1] or "?"
    git, dirty = GIT_START
    return [
        ("CPU", "%s, %d cores (os.cpu_count)" % (cpu, os.cpu_count() or 0)),
        ("memory", mem),
        ("kernel", platform.release()),
        ("load average at start / end", "%s / %s" % (LOAD_START, load_avg())),
        ("glibc", libc),
        ("mimalloc", "libmimalloc2.0 " + pkg("libmimalloc2.0")),
        ("jemalloc", "libjemalloc2 " + pkg("libjemalloc2")),
        ("tcmalloc", "libtcmalloc-minimal4 " + pkg("libtcmalloc-minimal4")),
        ("keel", "build/libkeel.so (sha256 %s) at commit %s%s" % (KEEL_HASH_START, git, " + uncommitted src changes" if dirty else "")),
        ("programs", "python3 %s, gcc %s, sqlite3 %s, redis-server %s" % (
            pkg("python3"), pkg("gcc"), pkg("sqlite3"), pkg("redis-server"))),
    ]


def keel_hash():
    import hashlib
    p = preload_of("keel")
    try:
        with open(p, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()[:12]
    except (OSError, TypeError):
        return "?"


KEEL_HASH_START = keel_hash()   # the library the run measured (see GIT_START)


def svg_chart(rows, res, allocs):
    """Two panels: median wall time and peak RSS relative to keel, one group
    of bars per workload; linear scale capped at 3× (taller bars are cut and
    labelled), a line at 1×."""
    colors = {"glibc": "#7f7f7f", "mimalloc": "#1f77b4", "jemalloc": "#2ca02c", "tcmalloc": "#d62728", "keel": "#ff7f0e", "keel-thp": "#9467bd"}
    bw, gap, ph, top, cap = 9, 14, 220, 50, 3.0
    gw = bw * len(allocs) + gap
    width = 70 + gw * len(rows) + 20
    height = top + 2 * (ph + 120) + 20
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">' % (width, height),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="10" y="18" font-size="14">keel bench: median of rounds relative to keel (lower is better; 1 = keel)</text>']
    lx = 10
    for a in allocs:
        o.append('<rect x="%d" y="26" width="10" height="10" fill="%s"/><text x="%d" y="35">%s</text>' % (lx, colors.get(a, "#000"), lx + 14, a))
        lx += 20 + 7 * len(a)
    for pi, (key, title) in enumerate((("wall", "wall time ÷ keel"), ("rss", "peak RSS ÷ keel"))):
        y0 = top + pi * (ph + 120) + 20
        base = y0 + ph
        o.append('<text x="10" y="%d" font-size="13">%s</text>' % (y0 - 14, title))
        for t in (0, 1, 2, 3):
            y = base - ph * t / cap
            o.append('<line x1="60" x2="%d" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="%s"/>' % (width - 10, y, y, "#000" if t == 1 else "#ddd", "1.2" if t == 1 else "1"))
            o.append('<text x="55" y="%.1f" text-anchor="end">%d×</text>' % (y + 4, t))
        for gi, row in enumerate(rows):
            gx = 70 + gi * gw
            k = med(res[row].get("keel", {}).get(key, []))
            for ai, a in enumerate(allocs):
                v = med(res[row].get(a, {}).get(key, []))
                if v is None or not k:
                    continue
                ratio = v / k
                h = ph * min(ratio, cap) / cap
                x = gx + ai * bw
                o.append('<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="%s"><title>%s %s: %.2f×</title></rect>' % (x, base - h, bw - 1, h, colors.get(a, "#000"), row_label(row), a, ratio))
                if ratio > cap:
                    o.append('<text x="%d" y="%.1f" font-size="8" transform="rotate(-90 %d %.1f)">%.1f</text>' % (x + 7, base - h - 2, x + 7, base - h - 2, ratio))
            lx, ly = gx + gw / 2, base + 8
            o.append('<text x="%.1f" y="%.1f" text-anchor="end" transform="rotate(-50 %.1f %.1f)">%s</text>' % (lx, ly, lx, ly, row_label(row)))
    o.append("</svg>")
    return "\n".join(o) + "\n"


def row_label(row):
    name, t = row
    return name if t is None else "%s/%dt" % (name, t)


def markdown(rows, res, allocs, fp, cmdline, elapsed, notes):
    L = []
    L.append("# keel benchmark results (%s run)\n" % MODE)
    L.append("Command: `%s`  " % cmdline)
    L.append("Date: %s UTC; %d round(s), allocators alternated within each workload; %.0f s in all.\n"
             % (time.strftime("%Y-%m-%d %H:%M", time.gmtime()), ROUNDS, elapsed))
    L.append("| machine | |\n|---|---|")
    for k, v in machine():
        L.append("| %s | %s |" % (k, v))
    L.append("")
    L.append("Each cell is the median over the rounds; in brackets the allocator's figure divided by keel's "
             "(above 1.00× means keel is faster / smaller). `/4t` = 4 threads; work per thread is fixed, so "
             "more threads is more total work. FAIL = the workload's own content check failed. "
             "spread = the largest (max − min) ÷ median over the rounds of any allocator in the row: "
             "a ratio closer to 1.00× than that is noise. Wall time well above user+sys time on a "
             "single-threaded row means the machine was busy with other work; user+sys is then the "
             "steadier figure.\n")
    sections = (("wall", "Wall time (s)", lambda v: "%.3f" % v),
                ("cpu", "User+sys time (s)", lambda v: "%.3f" % v),
                ("rss", "Peak resident memory (MiB)", lambda v: "%.1f" % (v / 1024)))
    for key, title, f in sections:
        L.append("## %s\n" % title)
        spread = key != "rss" and ROUNDS > 1
        L.append("| workload | " + " | ".join(allocs) + (" | spread |" if spread else " |"))
        L.append("|---|" + "---:|" * (len(allocs) + spread))
        for row in rows:
            k = med(res[row].get("keel", {}).get(key, []))
            cells = []
            for a in allocs:
                d = res[row].get(a, {})
                if d.get("fail"):
                    cells.append("FAIL")
                    continue
                v = med(d.get(key, []))
                cells.append("" if v is None else f(v) + ("" if a == "keel" else fmt_ratio(v, k)))
            if spread:  # the widest (max - min) / median of any allocator in this row
                sp = [(max(v) - min(v)) / statistics.median(v) for v in
                      (res[row].get(a, {}).get(key, []) for a in allocs) if len(v) > 1 and statistics.median(v) > 0]
                cells.append("%.0f%%" % (100 * max(sp)) if sp else "")
            L.append("| %s | %s |" % (row_label(row), " | ".join(cells)))
        L.append("")
    extra = [(row, m) for row in rows for m in sorted({m for a in allocs for m in res[row].get(a, {}).get("metrics", {})})]
    if extra:
        L.append("## Other figures\n")
        L.append("| workload | figure | " + " | ".join(allocs) + " |")
        L.append("|---|---|" + "---:|" * len(allocs))
        for row, m in extra:
            vals = {a: med(res[row].get(a, {}).get("metrics", {}).get(m, [])) for a in allocs}
            k = vals.get("keel")
            cells = []
            for a in allocs:
                v = vals[a]
                if v is None:
                    cells.append("")
                elif m.endswith("_kib"):
                    cells.append("%.1f MiB" % (v / 1024) + ("" if a == "keel" else fmt_ratio(v, k)))
                else:
                    cells.append("%.0f" % v + ("" if a == "keel" else fmt_ratio(v, k)))
            L.append("| %s | %s | %s |" % (row_label(row), m.replace("_kib", "").replace("_", " "), " | ".join(cells)))
        L.append("\nrss after free: resident memory 300 ms after the last free (after one more malloc/free). "
                 "requests per s: mean over the four redis-benchmark tests (higher is better, so here a ratio above 1.00× means the other allocator served more).\n")
    if fp:
        L.append("## Fast path: instructions per malloc/free pair (callgrind)\n")
        L.append("Whole-program instruction count minus the same program with N = 0 (same warm-up), divided by N; "
                 "includes ~5 instructions of loop. Deterministic: use it to steer the fast path.\n")
        L.append("| pattern | " + " | ".join(allocs) + " |")
        L.append("|---|" + "---:|" * len(allocs))
        for mode, label in (("pair", "one malloc(32)/free pair at a time"), ("batch", "batches of 1,000, mixed sizes 16-512 B")):
            k = fp.get(("keel", mode))
            cells = []
            for a in allocs:
                v = fp.get((a, mode))
                cells.append("" if v is None else "%.1f" % v + ("" if a == "keel" else fmt_ratio(v, k)))
            L.append("| %s | %s |" % (label, " | ".join(cells)))
        L.append("")
    L.append("## Workloads\n")
    seen = set()
    for name, _ in rows:
        if name in seen:
            continue
        seen.add(name)
        L.append("- **%s**: %s" % (name, NATIVE[name][3] if name in NATIVE else PROGRAM_NOTES[name]))
    L.append("")
    for n in notes:
        L.append(n)
    return "\n".join(L) + "\n"


def main():
    t_start = time.time()
    allocs = []
    for a in ALLOCS:
        if a not in ALL_ALLOCS and a not in VARIANTS:
            sys.exit("bench: unknown allocator %s (known: %s)" % (a, " ".join(ALL_ALLOCS + list(VARIANTS))))
        if preload_of(a) is None:
            print("bench: %s not found, skipped" % a, file=sys.stderr)
            continue
        allocs.append(a)
    known = list(NATIVE) + list(PROGRAMS) + ["fastpath", "wasm"]
    for w in ONLY:
        if w not in known:
            sys.exit("bench: unknown workload %s (known: %s)" % (w, " ".join(known)))
    want = lambda w: not ONLY or w in ONLY
    rows = []
    for name, (sf, sq, threaded, _) in NATIVE.items():
        if want(name):
            for t in (THREADS if threaded else [1]):
                rows.append((name, t))
    for name in PROGRAMS:
        if want(name):
            rows.append((name, None))
    res = {row: {} for row in rows}
    failures = []
    tmp = tempfile.mkdtemp(prefix="keel-bench-")
    progs = Programs(tmp)
    try:
        for row in rows:
            name, t = row
            for rd in range(ROUNDS):
                for a in allocs:
                    d = res[row].setdefault(a, {"wall": [], "cpu": [], "rss": [], "metrics": {}})
                    if d.get("fail"):
                        continue
                    if name in NATIVE:
                        sf, sq, _, _ = NATIVE[name]
                        scale = 1 if SMOKE else sq if QUICK else sf
                        r = Run([os.path.join(BIN, "kbench"), name, str(t), str(scale)], a)
                        err = None if r.rc == 0 and any(l.startswith("ok ") for l in r.stdout.splitlines()) else (r.stderr.strip()[-400:] or "exit status %d" % r.rc)
                    else:
                        r, err = progs.run(name, a)
                    if err:
                        d["fail"] = err
                        failures.append("%s under %s: %s" % (row_label(row), a, err))
                        print("FAIL %s %s: %s" % (row_label(row), a, err), file=sys.stderr)
                        continue
                    d["wall"].append(r.wall); d["cpu"].append(r.cpu); d["rss"].append(r.rss_kib)
                    for k, v in metrics_of(r.stdout).items():
                        d["metrics"].setdefault(k, []).append(v)
                    print("  %-18s %-9s round %d: %7.3f s wall %7.3f s cpu %8.1f MiB" % (
                        row_label(row), a, rd + 1, r.wall, r.cpu, r.rss_kib / 1024), flush=True)
        fp = fastpath(allocs) if want("fastpath") and shutil.which("valgrind") else {}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    notes = []
    wasm = os.path.join(BENCH, "wasm", "run.sh")
    if MODE in ("full",) or (ONLY and "wasm" in ONLY and not QUICK and not SMOKE):
        if os.path.exists(wasm):
            print("== wasm section (bench/wasm/run.sh)", flush=True)
            # IR=1: also the cachegrind counts (instructions, cache misses),
            # the figures a noisy machine cannot blur; unless the caller chose.
            r = subprocess.run(["bash", wasm], env=dict(os.environ, IR=os.environ.get("IR", "1")))
            notes.append("The wasm32 section ran (`bench/wasm/run.sh`, exit %d); its results are in "
                         "[bench/wasm/RESULTS.md](%s)." % (r.returncode, "wasm/RESULTS.md"))
            if r.returncode != 0:
                failures.append("bench/wasm/run.sh exited %d" % r.returncode)
    if failures:
        notes.append("\n## Failures\n")
        notes.extend("- " + f for f in failures)
    elapsed = time.time() - t_start
    cmdline = env.get("BENCH_CMDLINE", "make bench")
    os.makedirs(os.path.join(OUTDIR, "raw"), exist_ok=True)
    md = markdown(rows, res, allocs, fp, cmdline, elapsed, notes)
    svg = svg_chart(rows, res, allocs)
    with open(os.path.join(OUTDIR, MODE + ".md"), "w") as f:
        f.write(md.replace("](wasm/RESULTS.md)", "](../wasm/RESULTS.md)") +
                "\n![chart](%s.svg)\n" % MODE)
    with open(os.path.join(OUTDIR, MODE + ".svg"), "w") as f:
        f.write(svg)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    with open(os.path.join(OUTDIR, "raw", "%s-%s.json" % (MODE, stamp)), "w") as f:
        json.dump({"mode": MODE, "rounds": ROUNDS, "allocators": allocs,
                   "runs": {row_label(r): res[r] for r in rows},
                   "fastpath": {"%s/%s" % k: v for k, v in fp.items()}}, f, indent=1)
    if MODE == "full" and not env.get("OUTDIR"):
        # Sections measured by other scripts (heaps, checks, huge pages) sit
        # below KEPT in RESULTS.md and survive a new full run.
        kept = ""
        try:
            with open(os.path.join(BENCH, "RESULTS.md")) as f:
                old = f.read()
            if KEPT in old:
                kept = "\n" + KEPT + old.split(KEPT, 1)[1]
        except OSError:
            pass
        with open(os.path.join(BENCH, "RESULTS.md"), "w") as f:
            f.write(md + "\n![chart: time and peak memory relative to keel](results/full.svg)\n" + kept)
        print("bench: wrote bench/RESULTS.md")
    print(md)
    print("bench: wrote %s/%s.md and %s.svg in %.0f s" % (OUTDIR, MODE, MODE, elapsed))
    if failures:
        print("bench: %d failure(s)" % len(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
