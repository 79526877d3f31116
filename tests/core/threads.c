/* threads.c — thread exit, thread churn, fork, and first calls at any time.
 * Args: [threads (100,000)] [forks (200)].
 *  - 100,000 threads created and joined, each allocating and leaving blocks
 *    for others to free: resident memory flat after warm-up;
 *  - fork() (200 times) while other threads allocate: the child allocates,
 *    starts a thread and exits;
 *  - allocation in a constructor before main and in atexit handlers and
 *    destructors after main (the suite also preloads a library whose
 *    constructor allocates). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../harness.h"

#define HANDOFF 1024
static _Atomic(char *) handoff[HANDOFF];
static void *churn(void *arg) {
  unsigned i = (unsigned)(uintptr_t)arg;
  char *keep = malloc(64 + i % 2000);      /* left for a later thread to free */
  memset(keep, (int)(i & 0xff), 64);
  void *tmp[8];
  for (int k = 0; k < 8; k++) tmp[k] = malloc(16 << (k % 6));
  for (int k = 0; k < 8; k++) free(tmp[k]);
  char *old = atomic_exchange(&handoff[i % HANDOFF], keep);
  if (old) {
    unsigned char c = (unsigned char)old[0];
    for (int k = 1; k < 64; k++) if ((unsigned char)old[k] != c) abort();
    free(old);
  }
  return NULL;
}

static _Atomic int stop;
static void *busy(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    void *p[32];
    for (int i = 0; i < 32; i++) p[i] = malloc(32 + i * 40);
    for (int i = 0; i < 32; i++) free(p[i]);
  }
  return NULL;
}

static char *early;
__attribute__((constructor)) static void before_main(void) {
  early = malloc(100);
  strcpy(early, "allocated before main");
}
static void at_exit(void) {
  char *p = malloc(1000);
  memset(p, 1, 1000);
  free(p);
  free(early);
  p = strdup("atexit");
  free(p);
}
__attribute__((destructor)) static void after_main(void) {
  void *p = malloc(50000);
  free(p);
}

int main(int argc, char **argv) {
  long threads = argc > 1 ? atol(argv[1]) : 100000;
  int forks = argc > 2 ? atoi(argv[2]) : 200;
  CHECK(early != NULL && strcmp(early, "allocated before main") == 0);
  atexit(at_exit);

  long warm = 0;
  for (long i = 0; i < threads; i++) {
    pthread_t t;
    if (pthread_create(&t, NULL, churn, (void *)(uintptr_t)i) != 0) { CHECK(!"pthread_create"); break; }
    pthread_join(t, NULL);
    if (i == threads / 10) warm = kl_t_rss_kib();
  }
  long end = kl_t_rss_kib();
  CHECKF(end < warm + 8 * 1024, "resident after warm-up %ld KiB, after %ld threads %ld KiB", warm, threads, end);
  for (int i = 0; i < HANDOFF; i++) free(atomic_exchange(&handoff[i], NULL));

  /* fork while two threads allocate without pause */
  pthread_t b[2];
  for (int i = 0; i < 2; i++) pthread_create(&b[i], NULL, busy, NULL);
  int good = 0;
  for (int i = 0; i < forks; i++) {
    pid_t pid = fork();
    if (pid == 0) {
      void *p[100];
      for (int k = 0; k < 100; k++) { p[k] = malloc(10 + k * 100); memset(p[k], 1, 10 + k * 100); }
      for (int k = 0; k < 100; k++) free(p[k]);
      pthread_t t;
      pthread_create(&t, NULL, busy, NULL);   /* the child can start threads too */
      atomic_store(&stop, 1);
      pthread_join(t, NULL);
      _exit(0);
    }
    int st;
    if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0) good++;
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < 2; i++) pthread_join(b[i], NULL);
  CHECKF(good == forks, "%d of %d forked children allocated and exited cleanly", good, forks);
  return KL_DONE();
}
