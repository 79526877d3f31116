// app.cpp — the C++/jsoncpp scenario of the linking tests (issue 3), built
// in every linking mode. Global constructors in unit_a.cpp, unit_b.cpp and
// libregistry.a allocate before main; main loads config.json from disk N
// times (default 10,000), part of them from several threads at once, checks
// that every load parses to the same digest, and asserts that resident
// memory (VmRSS from /proc/self/status) stays flat after warm-up.
// Usage: app CONFIG [LOADS] [MAX_GROWTH_KIB]
//
// Without jsoncpp (KL_NO_JSONCPP: the fully static mode, because Debian ships
// no libjsoncpp.a) a small parser below builds the same kind of tree of
// strings, maps and vectors, so the allocation pattern stays comparable.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>
#include "registry.h"
#include "../keelapi.h"
#include "../../harness.h"
#ifndef KL_NO_JSONCPP
#include <json/json.h>
#else
#include <map>
#include <memory>
#endif

std::size_t unit_a_size();
std::size_t unit_b_size();

#ifndef KL_NO_JSONCPP
// Digest of a parsed document: members, elements and the text of every leaf.
static void digest(const Json::Value &v, unsigned long &h) {
  if (v.isObject()) {
    for (const auto &name : v.getMemberNames()) {
      for (char c : name) h = h * 131 + (unsigned char)c;
      digest(v[name], h);
    }
  } else if (v.isArray()) {
    for (Json::ArrayIndex i = 0; i < v.size(); i++) { h = h * 7 + i; digest(v[i], h); }
  } else {
    for (char c : v.asString().empty() && !v.isString() ? std::string("~") : (v.isString() ? v.asString() : v.toStyledString()))
      h = h * 131 + (unsigned char)c;
  }
}

static unsigned long load_once(const char *path) {
  std::ifstream in(path, std::ios::binary);
  Json::CharReaderBuilder b;
  Json::Value root;
  std::string errs;
  if (!in || !Json::parseFromStream(b, in, &root, &errs)) return 0;
  unsigned long h = 5381;
  digest(root, h);
  // Write it back out too: more short-lived strings.
  Json::StreamWriterBuilder w;
  h += Json::writeString(w, root["app"]).size();
  return h;
}
#else
// A minimal JSON reader (enough for config.json): objects, arrays,
// strings with simple escapes, and every other scalar kept as its text.
struct Node {
  std::map<std::string, std::unique_ptr<Node>> obj;
  std::vector<std::unique_ptr<Node>> arr;
  std::string text;
  int kind = 0;  // 0 scalar, 1 object, 2 array
};
static void ws(const char *&p) { while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') p++; }
static bool str(const char *&p, std::string &out) {
  if (*p != '"') return false;
  for (p++; *p && *p != '"'; p++) { if (*p == '\\' && p[1]) p++; out.push_back(*p); }
  if (*p != '"') return false;
  p++;
  return true;
}
static bool parse(const char *&p, Node &n) {
  ws(p);
  if (*p == '{') {
    n.kind = 1; p++; ws(p);
    if (*p == '}') { p++; return true; }
    for (;;) {
      std::string k; ws(p);
      if (!str(p, k)) return false;
      ws(p); if (*p++ != ':') return false;
      auto child = std::make_unique<Node>();
      if (!parse(p, *child)) return false;
      n.obj[k] = std::move(child);
      ws(p); if (*p == ',') { p++; continue; }
      if (*p++ != '}') return false;
      return true;
    }
  }
  if (*p == '[') {
    n.kind = 2; p++; ws(p);
    if (*p == ']') { p++; return true; }
    for (;;) {
      n.arr.push_back(std::make_unique<Node>());
      if (!parse(p, *n.arr.back())) return false;
      ws(p); if (*p == ',') { p++; continue; }
      if (*p++ != ']') return false;
      return true;
    }
  }
  if (*p == '"') return str(p, n.text);
  while (*p && !strchr(",]} \n\r\t", *p)) n.text.push_back(*p++);
  return !n.text.empty();
}
static void digest(const Node &n, unsigned long &h) {
  if (n.kind == 1) for (auto &kv : n.obj) { for (char c : kv.first) h = h * 131 + (unsigned char)c; digest(*kv.second, h); }
  else if (n.kind == 2) { unsigned i = 0; for (auto &c : n.arr) { h = h * 7 + i++; digest(*c, h); } }
  else for (char c : n.text) h = h * 131 + (unsigned char)c;
}
static unsigned long load_once(const char *path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return 0;
  std::stringstream ss; ss << in.rdbuf();
  std::string text = ss.str();
  const char *p = text.c_str();
  Node root;
  if (!parse(p, root)) return 0;
  unsigned long h = 5381;
  digest(root, h);
  return h;
}
#endif

static long rss_kib() {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256]; long kib = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) { kib = strtol(line + 6, NULL, 10); break; }
  fclose(f);
  return kib;
}

// Loads `n` times on this thread and `threads` x `per_thread` at once.
static bool round_of(const char *path, unsigned long want, int n, int threads, int per_thread) {
  std::atomic<int> bad{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; t++)
    ts.emplace_back([&] { for (int i = 0; i < per_thread; i++) if (load_once(path) != want) bad++; });
  for (int i = 0; i < n; i++) if (load_once(path) != want) bad++;
  for (auto &t : ts) t.join();
  return bad.load() == 0;
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "config.json";
  int loads = argc > 2 ? atoi(argv[2]) : 10000;
  long max_growth = argc > 3 ? atol(argv[3]) : 4096;
  const int threads = 4;

  // The global constructors ran, each allocated (from keel).
  CHECK(registry_size() == 5);
  CHECK(unit_a_size() == 201 && unit_b_size() == 201);
  CHECK(kl_is_keel(registry().begin()->second.front().data()));

  long start = rss_kib();
  unsigned long want = load_once(path);
  CHECKF(want != 0, "cannot load %s", path);
  if (want == 0) return KL_DONE();

  // Warm-up: 15% of the loads, single-threaded and threaded, so that the
  // caches of keel, glibc's stdio and thread stacks reach steady state.
  int warm = loads * 15 / 100;
  CHECK(round_of(path, want, warm / 3, threads, (warm - warm / 3) / threads));
  long base = rss_kib();
  int done = 1 + warm / 3 + (warm - warm / 3) / threads * threads;
  // The rest in 5 rounds, each alternating one thread and several.
  int rest = loads - done, per_round = rest / 5;
  for (int r = 0; r < 5; r++) {
    int n = r == 4 ? rest - per_round * 4 : per_round;
    int single = n / 2, each = (n - single) / threads;
    single = n - each * threads;
    CHECK(round_of(path, want, single, threads, each));
    done += n;
  }
  long end = rss_kib();
  CHECK(done == loads);
  CHECKF(base > 0 && end - base <= max_growth, "RSS grew %ld KiB (bound %ld)", end - base, max_growth);
  printf("loads %d: rss at start %ld KiB, after warm-up %ld KiB, at end %ld KiB; "
         "growth after warm-up %ld KiB, over all loads %ld KiB\n",
         done, start, base, end, end - base, end - start);
  return KL_DONE();
}
