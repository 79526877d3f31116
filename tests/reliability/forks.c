/* forks.c — fork while other threads allocate and free without pause.
 *
 *   forks [FORKS] [THREADS]
 *
 * THREADS workers churn blocks (local and cross-thread frees through a
 * shared array) for the whole run while the main thread forks FORKS times.
 * One more thread starts and joins short-lived allocating threads without
 * pause, so thread exit (abandon) and thread start (reclaim), which take
 * keel's one lock, race every fork.
 * Each child, single-threaded and holding whatever state the workers left
 * mid-operation, allocates and frees a few thousand blocks of every size
 * regime, frees a block its parent made, starts and joins a thread that
 * allocates, and exits 0. The parent waits for each child with a deadline:
 * a child that hangs (a lock held by a thread that does not exist in the
 * child) is killed and counted, and so is any child that crashes. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "rel.h"
#include "../harness.h"

#define SLOTS 1024
static _Atomic(void *) slots[SLOTS];
static atomic_bool stop;
static _Atomic long worker_bad;

/* One step of the parent's load: a block of up to `max` bytes, its first
 * and last bytes marked, swapped into a random slot; the block it displaces
 * is freed (often by another thread than its maker). False if malloc failed. */
static bool replace_one(uint64_t *rng, size_t max) {
  size_t n = rel_size(rng, max);
  unsigned char *p = keel_malloc(n);
  if (!p) { worker_bad++; return false; }
  p[0] = (unsigned char)n; p[n - 1] = (unsigned char)(n >> 3);
  unsigned char *old = atomic_exchange_explicit(&slots[rel_below(rng, SLOTS)], p, memory_order_acq_rel);
  if (old) keel_free(old);
  return true;
}

static void *worker(void *arg) {
  uint64_t rng = (uintptr_t)arg;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) replace_one(&rng, 1 << 20);
  return NULL;
}

static void *short_lived(void *arg) {
  uint64_t rng = (uintptr_t)arg;
  /* Blocks left behind: the exit abandons a segment. */
  for (int i = 0; i < 32 && replace_one(&rng, 64 << 10); i++) {}
  return NULL;
}

static void *churner(void *arg) {
  uintptr_t k = (uintptr_t)arg;
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    pthread_t t;
    if (pthread_create(&t, NULL, short_lived, (void *)++k) == 0) pthread_join(t, NULL);
  }
  return NULL;
}

static void *child_thread(void *arg) {
  for (int i = 0; i < 1000; i++) { void *p = keel_malloc(16 + i); if (!p) return NULL; keel_free(p); }
  return arg;
}

static int child(void *parent_block) {
  uint64_t rng = (uintptr_t)&rng;
  void *keep[64] = { 0 };
  size_t ks[64] = { 0 };
  for (int i = 0; i < 3000; i++) {
    int k = (int)rel_below(&rng, 64);
    if (keep[k]) { if (!rel_check(keep[k], ks[k], k)) return 3; keel_free(keep[k]); }
    ks[k] = rel_size(&rng, 2 << 20);
    keep[k] = keel_malloc(ks[k]);
    if (!keep[k]) return 4;
    rel_fill(keep[k], ks[k], k);
  }
  for (int k = 0; k < 64; k++) if (keep[k]) { if (!rel_check(keep[k], ks[k], k)) return 3; keel_free(keep[k]); }
  if (!rel_check(parent_block, 1000, 7)) return 5;
  keel_free(parent_block);
  pthread_t t;
  void *r = NULL;
  if (pthread_create(&t, NULL, child_thread, (void *)1) || pthread_join(t, &r) || r != (void *)1) return 6;
  return 0;
}

int main(int argc, char **argv) {
  int forks = argc > 1 ? atoi(argv[1]) : 300;
  int threads = argc > 2 ? atoi(argv[2]) : 3;
  pthread_t tid[64];
  for (int i = 0; i < threads && i < 64; i++) pthread_create(&tid[i], NULL, worker, (void *)(uintptr_t)(i * 7919 + 1));
  pthread_t churn;
  pthread_create(&churn, NULL, churner, (void *)(uintptr_t)1000003);
  int ok = 0, failed = 0, hung = 0;
  for (int f = 0; f < forks; f++) {
    void *pb = keel_malloc(1000);
    rel_fill(pb, 1000, 7);
    pid_t pid = fork();
    if (pid < 0) { failed++; keel_free(pb); continue; }
    if (pid == 0) _exit(child(pb));
    keel_free(pb);
    /* Wait up to 20 s: generous for a loaded 2-core machine, and a hang
     * is forever, so the limit separates them without timing the child. */
    int status = 0, waited = 0;
    for (;;) {
      pid_t w = waitpid(pid, &status, WNOHANG);
      if (w == pid) break;
      if (++waited > 20000) { kill(pid, SIGKILL); waitpid(pid, &status, 0); hung++; status = -1; break; }
      struct timespec ts = { 0, 1000000 };
      nanosleep(&ts, NULL);
    }
    if (status == -1) continue;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) ok++;
    else {
      failed++;
      if (WIFSIGNALED(status)) fprintf(stderr, "child %d killed by signal %d\n", f, WTERMSIG(status));
      else fprintf(stderr, "child %d exited %d\n", f, WEXITSTATUS(status));
    }
  }
  atomic_store(&stop, true);
  for (int i = 0; i < threads && i < 64; i++) pthread_join(tid[i], NULL);
  pthread_join(churn, NULL);
  for (int i = 0; i < SLOTS; i++) keel_free(atomic_exchange(&slots[i], NULL));
  printf("forks: %d children with %d threads allocating and one churning threads: %d clean, %d failed, %d hung\n", forks, threads, ok, failed, hung);
  CHECKF(ok == forks, "%d failed, %d hung", failed, hung);
  CHECK(worker_bad == 0);
  return KL_DONE();
}
