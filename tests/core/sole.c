/* sole.c — the only page of a class, kept when it empties (page.c's
 * kl_page_retire pins it: internal.h's kl_page_pin).
 *  1. a thread that allocates and frees one block in a loop keeps one page
 *     of the class, and every block keeps its contents;
 *  2. when the class needs more pages, the kept page is an ordinary one
 *     again: after every block is freed, the class is back to one page
 *     (the others went back to their segments);
 *  3. a block another thread frees into the kept page comes back: the
 *     page is not lost, and goes back at the owner's exit;
 *  4. the thread's exit gives the kept page back too (the class's pages
 *     return to what they were before the thread ran).
 * Each part runs in its own thread, so its pages are its own. The pages
 * of a class are read from keel_stats_get (process-wide), as differences.
 * Links libkeel. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "keel.h"
#include "../harness.h"

#define SIZE 112   /* a class of its own (112 B); the harness allocates none */
#define MANY 6000  /* over four 64 KiB pages of 112-byte blocks */

static size_t class_pages(void) {
  keel_stats_t s;
  keel_stats_get(&s);
  for (int i = 0; i < KEEL_STATS_CLASSES; i++)
    if (s.classes[i].block_size == SIZE) return s.classes[i].pages;
  return (size_t)-1;
}

static void fill(unsigned char *p, unsigned seed) { for (int i = 0; i < SIZE; i++) p[i] = (unsigned char)(seed * 7 + i); }
static int same(const unsigned char *p, unsigned seed) {
  for (int i = 0; i < SIZE; i++) if (p[i] != (unsigned char)(seed * 7 + i)) return 0;
  return 1;
}

static size_t base;   /* the class's pages before any part ran */

static void *loop_then_many(void *arg) {
  (void)arg;
  /* 1. one block at a time */
  int bad = 0;
  for (unsigned i = 0; i < 100000; i++) {
    unsigned char *p = malloc(SIZE);
    fill(p, i);
    if (!same(p, i)) bad++;
    free(p);
  }
  CHECK(bad == 0);
  CHECKF(class_pages() == base + 1, "pages %zu, expected %zu", class_pages(), base + 1);
  /* 2. many at once, then all freed */
  static unsigned char *v[MANY];
  for (unsigned i = 0; i < MANY; i++) { v[i] = malloc(SIZE); fill(v[i], i); }
  CHECKF(class_pages() >= base + 4, "pages %zu with %d live blocks", class_pages(), MANY);
  bad = 0;
  for (unsigned i = 0; i < MANY; i++) { if (!same(v[i], i)) bad++; free(v[i]); }
  CHECK(bad == 0);
  CHECKF(class_pages() == base + 1, "after freeing all: pages %zu, expected %zu", class_pages(), base + 1);
  /* ...and the loop works as before on what is left */
  for (unsigned i = 0; i < 1000; i++) { unsigned char *p = malloc(SIZE); fill(p, i); if (!same(p, i)) bad++; free(p); }
  CHECK(bad == 0);
  CHECK(class_pages() == base + 1);
  return NULL;
}

/* 3. the owner keeps one page, pinned; another thread frees its block and
 * exits (its exit sends the block back from its foreign cache) */
static void *remote_freer(void *arg) {
  unsigned char *p = arg;
  CHECK(same(p, 77));
  free(p);
  return NULL;
}
static void *owner(void *arg) {
  (void)arg;
  for (unsigned i = 0; i < 1000; i++) { unsigned char *p = malloc(SIZE); fill(p, i); free(p); }
  unsigned char *handed = malloc(SIZE);
  fill(handed, 77);
  pthread_t u;
  pthread_create(&u, NULL, remote_freer, handed);
  pthread_join(u, NULL);
  int bad = 0;
  for (unsigned i = 0; i < 5000; i++) { unsigned char *p = malloc(SIZE); fill(p, i); if (!same(p, i)) bad++; free(p); }
  CHECK(bad == 0);
  CHECKF(class_pages() == base + 1, "pages %zu, expected %zu", class_pages(), base + 1);
  return NULL;
}

int main(void) {
  base = class_pages();
  CHECK(base != (size_t)-1);
  pthread_t t;
  pthread_create(&t, NULL, loop_then_many, NULL);
  pthread_join(t, NULL);
  /* 4. that thread exited: its kept page went back */
  CHECKF(class_pages() == base, "after exit: pages %zu, expected %zu", class_pages(), base);
  pthread_create(&t, NULL, owner, NULL);
  pthread_join(t, NULL);
  CHECKF(class_pages() == base, "after exit: pages %zu, expected %zu", class_pages(), base);
  return KL_DONE();
}
