// app.cpp — the C++/jsoncpp scenario of the linking tests (issue 3), built
// in every linking mode. Global constructors in unit_a.cpp, unit_b.cpp and
// libregistry.a allocate before main; main loads config.json from disk N
// times (default 10,000), part of them from several threads at once, checks
// that every load parses to the same digest, and asserts that resident
// memory (VmRSS from /proc/self/status) stays flat after warm-up.
// Usage: app CONFIG [LOADS] [MAX_GROWTH_KIB]
//
// The fully static mode links a libjsoncpp.a built from Debian's jsoncpp
// source package (tools/deps/jsoncpp-static.sh): Debian ships no archive.
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
#include <json/json.h>

std::size_t unit_a_size();
std::size_t unit_b_size();

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
