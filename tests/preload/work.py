# A python3 workload for the preload test: json, regular expressions, dicts,
# strings and threads. Its output must not depend on the allocator.
import hashlib, json, re, threading

docs = [{"id": i, "name": "item%d" % i, "tags": ["t%d" % (i % 7), "x" * (i % 50)],
         "nested": {"a": list(range(i % 20)), "b": {"c": str(i) * 3}}} for i in range(20000)]
text = json.dumps(docs, sort_keys=True)
back = json.loads(text)
assert back == docs
words = re.findall(r"item(\d+)", text)
counts = {}
for w in words:
    counts[w[-1]] = counts.get(w[-1], 0) + 1
results = [None] * 4
def work(k):
    h = hashlib.sha256()
    for i in range(k, 20000, 4):
        s = json.dumps(docs[i], sort_keys=True)
        h.update(re.sub(r"\d", "#", s).encode())
    results[k] = h.hexdigest()
threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(len(text), sorted(counts.items()), results)
