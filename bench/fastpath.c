/* fastpath.c — the instruction-count micro-benchmark of `make bench`.
 *
 *   fastpath pair|batch N
 *
 * Runs N malloc(32)/free pairs, either one pair at a time ("pair") or in
 * batches of 1,000 mallocs followed by 1,000 frees ("batch"), after the same
 * warm-up in every run. The driver counts the whole program's instructions
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
  /* Warm-up, identical for every N: initializes the allocator and the
   * thread, and leaves a page of the size class ready. */
  for (int i = 0; i < 1000; i++) { batch[i] = malloc(32); ESCAPE(batch[i]); }
  for (int i = 0; i < 1000; i++) free(batch[i]);
  if (strcmp(argv[1], "pair") == 0) {
    for (long i = 0; i < n; i++) { void *p = malloc(32); ESCAPE(p); free(p); }
  } else if (strcmp(argv[1], "batch") == 0) {
    for (long r = 0; r < n / 1000; r++) {
      for (int i = 0; i < 1000; i++) { batch[i] = malloc(32); ESCAPE(batch[i]); }
      for (int i = 0; i < 1000; i++) free(batch[i]);
    }
  } else { fprintf(stderr, "fastpath: unknown mode %s\n", argv[1]); return 2; }
  return 0;
}
