/* keel's -mt archive (emcc -pthread) under contention: 4 threads allocate,
 * resize and free at random, each block filled with a pattern checked before
 * it is resized or freed; a quarter of the blocks are handed to another
 * thread through a shared mailbox and freed there. At the end the heap
 * walker must find the heap valid. tests/suites/wasm.sh runs it on node.
 * Usage: threads [steps per thread] (default 100000). Prints "N passed, N failed". */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include "keel.h"
#include "harness.h"

int keel_wasm_heap_check(void);

enum { THREADS = 4, SLOTS = 512, MAILBOX = 64 };
typedef struct { unsigned char *p; size_t n; } block_t;
static block_t *mailbox[MAILBOX];       /* blocks in transit between threads (atomic exchange) */
static long steps = 100000;

static uint32_t next(uint32_t *r) { *r ^= *r << 13; *r ^= *r >> 17; *r ^= *r << 5; return *r; }
static size_t pick(uint32_t *r) {
  uint32_t k = next(r) % 100;
  if (k < 85) return next(r) % 129;
  if (k < 99) return next(r) % 4097;
  return next(r) % 65537;
}
/* The block header (a block_t) sits in the block itself, so a block that
 * changes hands carries its size and its pattern can be checked anywhere. */
static block_t *make(uint32_t *r, int how) {
  size_t n = sizeof(block_t) + pick(r);
  block_t *b = how == 0 ? malloc(n) : how == 1 ? calloc(1, n) : aligned_alloc(64, n);
  if (!b) return NULL;
  b->p = (unsigned char *)b; b->n = n;
  for (size_t k = sizeof *b; k < n; k++) b->p[k] = (unsigned char)(n + k);
  return b;
}
static int intact(const block_t *b) {
  if (b->p != (const unsigned char *)b) return 0;
  for (size_t k = sizeof *b; k < b->n; k++)
    if (b->p[k] != (unsigned char)(b->n + k)) return 0;
  return 1;
}

static void *worker(void *arg) {
  uint32_t r = 0x9e3779b9u * (uint32_t)(uintptr_t)arg + 1;
  block_t *slot[SLOTS] = {0};
  long bad = 0;
  for (long s = 0; s < steps; s++) {
    int i = next(&r) % SLOTS, op = next(&r) % 8;
    if (slot[i] && !intact(slot[i])) bad++;
    if (op < 2 && slot[i]) {                       /* hand it over; free what was waiting */
      block_t *got = __atomic_exchange_n(&mailbox[next(&r) % MAILBOX], slot[i], __ATOMIC_ACQ_REL);
      if (got) { if (!intact(got)) bad++; free(got); }
      slot[i] = NULL;
    } else if (op < 4 && slot[i]) {                /* resize: the pattern must survive */
      size_t n = sizeof(block_t) + pick(&r), keep = n < slot[i]->n ? n : slot[i]->n;
      block_t *b = realloc(slot[i], n);
      if (!b) { bad++; continue; }
      for (size_t k = sizeof *b; k < keep; k++)    /* b->p still names the old address */
        if (((unsigned char *)b)[k] != (unsigned char)(b->n + k)) { bad++; break; }
      b->p = (unsigned char *)b; b->n = n;
      for (size_t k = sizeof *b; k < n; k++) b->p[k] = (unsigned char)(n + k);
      slot[i] = b;
    } else {
      free(slot[i]);
      if (!(slot[i] = make(&r, op % 3))) bad++;
    }
  }
  for (int i = 0; i < SLOTS; i++) free(slot[i]);
  return (void *)(intptr_t)bad;
}

int main(int argc, char **argv) {
  if (argc > 1) steps = atol(argv[1]);
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)(i + 1)) == 0);
  for (int i = 0; i < THREADS; i++) {
    void *bad = (void *)1;
    CHECK(pthread_join(t[i], &bad) == 0);
    CHECKF(bad == NULL, "thread %d: %ld corrupt or failed blocks", i, (long)(intptr_t)bad);
  }
  for (int i = 0; i < MAILBOX; i++) {
    if (mailbox[i]) CHECK(intact(mailbox[i]));
    free(mailbox[i]);
  }
  CHECKF(keel_wasm_heap_check() == 0, "heap check %d", keel_wasm_heap_check());
  return KL_DONE();
}
