/* idle.c — a thread that frees its blocks and then makes no calls gets its
 * free pages given back anyway, by the purger thread (src/segment.c,
 * heaps_purge_idle), while the thread stays alive.
 *  1. a worker allocates 200,000 blocks of 16 B-2 KiB (about 200 MB),
 *     writes them, frees them all, and waits on a pipe; the main thread,
 *     which makes no allocator call meanwhile (it reads /proc with plain
 *     system calls), sees resident memory fall to within 8 MiB of what it
 *     was before the worker started, within 3 s;
 *  2. woken, the worker allocates and checks another 200,000 blocks: the
 *     purged pages work again.
 * Links libkeel. NO_IDLE_PURGE=1 (KEEL_PURGE_THREAD=0) only prints the
 * figure: nothing gives those pages back until the thread calls again. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "keel.h"
#include "../harness.h"

#define N 200000

static int wake[2], done[2];
static int bad;

static size_t size_of(int i) { return 16 + (size_t)(i * 7919) % 2001; }
static void round_trip(unsigned seed) {
  unsigned char **v = malloc(N * sizeof *v);
  for (int i = 0; i < N; i++) { size_t s = size_of(i); v[i] = malloc(s); memset(v[i], (int)(seed + i) & 0xff, s); }
  for (int i = 0; i < N; i++) {
    size_t s = size_of(i);
    if (v[i][0] != (unsigned char)((seed + i) & 0xff) || v[i][s - 1] != (unsigned char)((seed + i) & 0xff)) bad++;
    free(v[i]);
  }
  free(v);
}

static void *worker(void *arg) {
  (void)arg;
  char c = 0;
  round_trip(1);
  if (write(done[1], &c, 1) != 1) bad++;
  if (read(wake[0], &c, 1) != 1) bad++;   /* idle: no allocator call until woken */
  round_trip(2);
  return NULL;
}

int main(void) {
  bool purge = getenv("NO_IDLE_PURGE") == NULL;
  if (pipe(wake) != 0 || pipe(done) != 0) return 1;
  long base = kl_t_rss_kib();
  pthread_t t;
  pthread_create(&t, NULL, worker, NULL);
  char c;
  if (read(done[0], &c, 1) != 1) return 1;
  long after = kl_t_rss_kib(), now = after;
  int waited = 0;
  for (; waited < 3000 && now > base + 8 * 1024; waited += 20) { usleep(20000); now = kl_t_rss_kib(); }
  if (!purge) { usleep(500000); now = kl_t_rss_kib(); }
  printf("1. resident before %ld KiB; after the worker freed everything %ld KiB; %d ms later, the worker idle: %ld KiB\n",
         base, after, waited, now);
  if (purge) CHECKF(now <= base + 8 * 1024, "resident %ld KiB, %ld KiB before the worker", now, base);
  if (write(wake[1], &c, 1) != 1) return 1;
  pthread_join(t, NULL);
  printf("2. the worker's second round: %d bad blocks\n", bad);
  CHECK(bad == 0);
  return KL_DONE();
}
