/* fastpath.c — the instruction-count micro-benchmark of `make bench`.
 *
 *   fastpath pair|batch N
 *
 * Runs N malloc/free pairs after the same warm-up in every run: malloc(32)
 * and free one pair at a time ("pair"), or batches of 1,000 mallocs of
 * mixed small sizes followed by their 1,000 frees ("batch"): sizes 16 to
 * 512 bytes in steps of 16, in a fixed scattered order, so the batch walks
 * 32 size classes as a program does rather than one. The driver counts the whole program's instructions
 * under valgrind's callgrind for N and for N = 0 and divides the difference
 * by N, so start-up and the allocator's initialization cancel out. Counts
 * are repeatable on a noisy machine, which wall time is not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keeps the compiler from pairing up and deleting malloc/free. */
#define ESCAPE(p) __asm__ volatile("" : : "r"(p) : "memory")

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: fastpath pair|batch N\n"); return 2; }
  long n = atol(argv[2]);
  static void *batch[1000];
  static size_t sizes[1000];
  for (int i = 0; i < 1000; i++) sizes[i] = 16 * (size_t)(1 + (i * 13) % 32);
  /* Warm-up, identical for every N: initializes the allocator and the
   * thread, and leaves a page of every size class used ready. */
  for (int i = 0; i < 1000; i++) { batch[i] = malloc(sizes[i]); ESCAPE(batch[i]); }
  for (int i = 0; i < 1000; i++) free(batch[i]);
  void *p0 = malloc(32); ESCAPE(p0); free(p0);
  if (strcmp(argv[1], "pair") == 0) {
    for (long i = 0; i < n; i++) { void *p = malloc(32); ESCAPE(p); free(p); }
  } else if (strcmp(argv[1], "batch") == 0) {
    for (long r = 0; r < n / 1000; r++) {
      for (int i = 0; i < 1000; i++) { batch[i] = malloc(sizes[i]); ESCAPE(batch[i]); }
      for (int i = 0; i < 1000; i++) free(batch[i]);
    }
  } else { fprintf(stderr, "fastpath: unknown mode %s\n", argv[1]); return 2; }
  return 0;
}
