"""pyload.py — the python3 workload of `make bench` (real-program section).

Exercises the interpreter's allocations through malloc: JSON encode and
decode of nested documents, dict and string churn, and a few threads doing
the same (the GIL serializes them, but their objects are made and freed in
different threads). Deterministic; checks its own results and exits 3 on a
mismatch, so an allocator that corrupts memory cannot look fast.

    python3 pyload.py SCALE THREADS
"""
import hashlib
import json
import sys
import threading


def make_doc(seed, n):
    return {
        "id": seed,
        "name": "user-%d-%s" % (seed, "x" * (seed % 37)),
        "tags": ["t%d" % ((seed * 7 + i) % 101) for i in range(n % 23 + 1)],
        "scores": [((seed * 31 + i) % 1000) / 10.0 for i in range(n % 17 + 3)],
        "nested": {"k%d" % i: {"v": i * seed % 9973, "s": str(i) * (i % 5 + 1)} for i in range(n % 11 + 2)},
    }


def work(seed, rounds):
    h = hashlib.sha256()
    for r in range(rounds):
        docs = [make_doc(seed * 100003 + r * 101 + i, i) for i in range(200)]
        text = json.dumps(docs, sort_keys=True)
        back = json.loads(text)
        if back != docs:
            print("pyload: CHECK FAILED json round trip", file=sys.stderr)
            sys.exit(3)
        index = {}
        for d in back:
            for t in d["tags"]:
                index.setdefault(t, []).append(d["id"])
        words = " ".join(d["name"] for d in back).split(" ")
        joined = "|".join(sorted(set(words)))
        h.update(joined.encode())
        h.update(repr(sorted((k, len(v)) for k, v in index.items())).encode())
    return h.hexdigest()


def main():
    scale = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    nthreads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    expected = {i: work(i, 1) for i in range(nthreads)}  # one round, single thread
    results = {}

    def run(i):
        results[i] = [work(i, 1) for _ in range(scale)]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(nthreads):
        if results.get(i) != [expected[i]] * scale:
            print("pyload: CHECK FAILED thread %d result differs" % i, file=sys.stderr)
            sys.exit(3)
    print("ok pyload scale=%d threads=%d" % (scale, nthreads))


if __name__ == "__main__":
    main()
