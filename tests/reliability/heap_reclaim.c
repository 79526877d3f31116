/* heap_reclaim.c — a first-class heap must never adopt blocks it did not
 * allocate. A thread allocates blocks with keel_malloc and exits (its
 * segments are abandoned with the blocks live); the main thread then makes
 * a heap with keel_heap_new and allocates from it. If the heap adopts the
 * dead thread's segment, keel_heap_visit/keel_heap_contains report the dead
 * thread's blocks as the heap's, and keel_heap_destroy frees them under
 * the program (found by tests/fuzz/fuzz_api.c, seed corpus "mix0"). */
#include <pthread.h>
#include <stdint.h>
#include "rel.h"
#include "../harness.h"

#define N 64
static void *blocks[N];
static void *body(void *arg) {
  for (int i = 0; i < N; i++) { blocks[i] = keel_malloc(600); rel_fill(blocks[i], 600, i); }
  /* Free most so the segment has room and is worth adopting. */
  for (int i = 0; i < N; i++) if (i % 8) { keel_free(blocks[i]); blocks[i] = NULL; }
  return arg;
}
static int foreign;
static bool visit(void *block, size_t size, void *arg) {
  (void)size; (void)arg;
  for (int i = 0; i < N; i++) if (blocks[i] == block) foreign++;
  return true;
}

int main(void) {
  int rounds = 0, contained = 0;
  for (int r = 0; r < 50; r++) {
    pthread_t t;
    pthread_create(&t, NULL, body, NULL);
    pthread_join(t, NULL);
    keel_heap_t *h = keel_heap_new();
    void *mine[N];
    for (int i = 0; i < N; i++) mine[i] = keel_heap_malloc(h, 600);
    foreign = 0;
    keel_heap_visit(h, visit, NULL);
    for (int i = 0; i < N; i++) if (blocks[i] && keel_heap_contains(h, blocks[i])) contained++;
    CHECKF(foreign == 0, "round %d: keel_heap_visit reported %d blocks of a dead thread's default heap", r, foreign);
    keel_heap_destroy(h);
    (void)mine;
    /* The dead thread's blocks must still be intact and ours to free. */
    for (int i = 0; i < N; i++) if (blocks[i]) {
      void *q = keel_malloc(600);   /* would reuse a block destroy wrongly freed */
      rel_fill(q, 600, 99);
      CHECKF(rel_check(blocks[i], 600, i), "round %d: block %d damaged after destroying an unrelated heap", r, i);
      keel_free(q);
    }
    for (int i = 0; i < N; i++) if (blocks[i]) { keel_free(blocks[i]); blocks[i] = NULL; }
    rounds++;
    if (kl_t_fail) break;
  }
  CHECKF(contained == 0, "keel_heap_contains claimed %d foreign blocks", contained);
  printf("heap_reclaim: %d rounds\n", rounds);
  return KL_DONE();
}
