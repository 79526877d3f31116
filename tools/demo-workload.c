/* demo-workload — the bundled workload `make demo` runs: a small in-memory
 * "server". Worker threads build request objects (strings, arrays, small
 * structs of mixed sizes), hand a third of them to other workers through a
 * shared mailbox (so frees are remote), keep a rolling cache of responses,
 * and grow buffers with realloc. Every block carries a checked pattern.
 * Prints: seconds, peak RSS (KiB), operations, and a checksum that must not
 * depend on the allocator. Usage: demo-workload [threads] [rounds] */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define MAILBOX 4096
#define CACHE   2048
static _Atomic(uint8_t *) mailbox[MAILBOX];
static int rounds = 400000;

static uint64_t rng(uint64_t *s) { *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17; return *s; }
static size_t pick_size(uint64_t *s) {
  uint64_t r = rng(s);
  if ((r & 1023) == 0) return 64 * 1024 + (r >> 20) % (512 * 1024);   /* rare big buffer */
  if ((r & 63) == 0) return 1024 + (r >> 16) % 16384;                 /* medium */
  return 8 + (r >> 8) % 256;                                          /* mostly small */
}
/* Block layout: [size_t size][bytes...], bytes = low byte of (size + i). */
static uint8_t *make(size_t size) {
  uint8_t *p = malloc(size + sizeof(size_t));
  if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
  memcpy(p, &size, sizeof size);
  for (size_t i = 0; i < size; i += 61) p[sizeof(size_t) + i] = (uint8_t)(size + i);
  return p;
}
static uint64_t check(uint8_t *p) {
  size_t size;
  memcpy(&size, p, sizeof size);
  for (size_t i = 0; i < size; i += 61)
    if (p[sizeof(size_t) + i] != (uint8_t)(size + i)) { fprintf(stderr, "corrupted block\n"); abort(); }
  free(p);
  return size;
}

static void *worker(void *arg) {
  uint64_t s = 0x9e3779b97f4a7c15ull * ((uintptr_t)arg + 1), sum = 0;
  uint8_t *cache[CACHE] = { 0 };
  char *log = NULL; size_t log_len = 0;
  for (int i = 0; i < rounds; i++) {
    uint8_t *req = make(pick_size(&s));
    unsigned slot = (unsigned)(rng(&s) % CACHE);
    if (cache[slot]) sum += check(cache[slot]);
    cache[slot] = req;
    if (i % 3 == 0) {   /* hand a block to whoever reads this mailbox slot next */
      uint8_t *old = atomic_exchange_explicit(&mailbox[rng(&s) % MAILBOX], make(pick_size(&s)), memory_order_acq_rel);
      if (old) sum += check(old);
    }
    if (i % 97 == 0) {  /* a growing text log, trimmed now and then */
      char *n = realloc(log, log_len + 64);
      if (!n) abort();
      log = n;
      memset(log + log_len, 'a' + i % 26, 64);
      log_len = log_len > 65536 ? 0 : log_len + 64;
    }
  }
  for (int i = 0; i < CACHE; i++) if (cache[i]) sum += check(cache[i]);
  free(log);
  return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 4;
  if (argc > 2) rounds = atoi(argv[2]);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pthread_t t[64];
  if (threads < 1 || threads > 64) threads = 4;
  uint64_t sum = 0;
  for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i);
  for (int i = 0; i < threads; i++) { void *r; pthread_join(t[i], &r); sum += (uintptr_t)r; }
  for (int i = 0; i < MAILBOX; i++) if (mailbox[i]) sum += check(mailbox[i]);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("seconds %.3f peak_rss_kib %ld ops %ld checksum %llu\n",
         (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, ru.ru_maxrss,
         (long)threads * rounds, (unsigned long long)sum);
  return 0;
}
