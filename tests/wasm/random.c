/* A long pseudo-random sequence of every family member, with content checks
 * (tests/suites/wasm.sh runs it with both toolchains). Every block is filled
 * with a pattern made from its slot and size and checked before it is
 * resized or freed; the heap walker runs every 4096 steps.
 * Usage: random [steps] (default 300000). Prints "N passed, N failed". */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "keel.h"
#include "harness.h"

void *memalign(size_t, size_t);
void *reallocarray(void *, size_t, size_t);
int keel_wasm_heap_check(void);

enum { SLOTS = 4096 };
static struct { unsigned char *p; size_t n; uint32_t tag; } slot[SLOTS];
static uint32_t rng = 0x9e3779b9u;
static uint32_t next(void) { rng ^= rng << 13; rng ^= rng >> 17; rng ^= rng << 5; return rng; }

/* Mostly small, some up to 64 KiB, a few up to 1 MiB. */
static size_t pick_size(void) {
  uint32_t r = next() % 100;
  if (r < 80) return next() % 129;
  if (r < 97) return next() % 4097;
  if (r < 99) return next() % 65537;
  return next() % (1u << 20);
}

static void fill(int i) {
  unsigned char *p = slot[i].p;
  for (size_t k = 0; k < slot[i].n; k++) p[k] = (unsigned char)(slot[i].tag + k * 7);
}
static int intact(int i, size_t upto) {
  unsigned char *p = slot[i].p;
  for (size_t k = 0; k < upto && k < slot[i].n; k++)
    if (p[k] != (unsigned char)(slot[i].tag + k * 7)) return 0;
  return 1;
}

int main(int argc, char **argv) {
  long steps = argc > 1 ? atol(argv[1]) : 300000;
  int bad_align = 0, bad_usable = 0, bad_content = 0, bad_null = 0;
  for (long s = 0; s < steps; s++) {
    int i = (int)(next() % SLOTS);
    if (slot[i].p) {
      if (!intact(i, slot[i].n)) bad_content++;
      uint32_t op = next() % 4;
      if (op == 0) {                                   /* resize */
        size_t n = pick_size();
        unsigned char *q = (next() & 1) ? realloc(slot[i].p, n) : reallocarray(slot[i].p, 1, n);
        if (!q && n) { bad_null++; continue; }
        slot[i].p = q;
        if (!intact(i, n)) bad_content++;
        slot[i].n = n;
        if (!q) continue;                              /* realloc(p, 0) freed it */
        if (keel_usable_size(q) < n) bad_usable++;
        fill(i);
        continue;
      }
      if (op == 1) keel_free_sized(slot[i].p, slot[i].n);
      else free(slot[i].p);
      slot[i].p = NULL;
      continue;
    }
    size_t n = pick_size(), al = __alignof__(max_align_t);
    unsigned char *p = NULL;
    switch (next() % 6) {
      case 0: case 1: p = malloc(n); break;
      case 2: {
        size_t c = n / 8 + 1;
        n = c * 8;
        p = calloc(c, 8);
        for (size_t k = 0; p && k < n; k++) if (p[k]) { bad_content++; break; }
        break;
      }
      case 3: al = (size_t)1 << (next() % 13); p = aligned_alloc(al, n); break;
      case 4: al = (size_t)1 << (2 + next() % 11); if (posix_memalign((void **)&p, al, n)) p = NULL; break;
      case 5: al = (size_t)1 << (next() % 10); p = memalign(al, n); break;
    }
    if (!p) { bad_null++; continue; }
    if ((uintptr_t)p % al || (uintptr_t)p % __alignof__(max_align_t)) bad_align++;
    if (keel_usable_size(p) < n) bad_usable++;
    slot[i].p = p; slot[i].n = n; slot[i].tag = next();
    fill(i);
    if (s % 4096 == 0) CHECKF(keel_wasm_heap_check() == 0, "heap check %d at step %ld", keel_wasm_heap_check(), s);
  }
  for (int i = 0; i < SLOTS; i++) {
    if (slot[i].p && !intact(i, slot[i].n)) bad_content++;
    free(slot[i].p);
  }
  CHECKF(keel_wasm_heap_check() == 0, "heap check %d at the end", keel_wasm_heap_check());
  CHECKF(bad_null == 0, "%d failed allocations", bad_null);
  CHECKF(bad_align == 0, "%d misaligned", bad_align);
  CHECKF(bad_usable == 0, "%d usable sizes too small", bad_usable);
  CHECKF(bad_content == 0, "%d corrupted blocks", bad_content);
  return KL_DONE();
}
