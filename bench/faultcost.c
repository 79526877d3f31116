/* faultcost.c — what a page fault costs on this machine, and what
 * MADV_POPULATE_WRITE saves (the figures behind KEEL_POPULATE, README).
 * Maps 64 MiB, writes one byte per 4 KiB page, unmaps; best of 5 rounds:
 *   touch   every page faulted in by the write that touches it
 *   pop64M  one MADV_POPULATE_WRITE for the whole range first
 *   pop64K  one per 64 KiB (keel's page), pop16K one per 16 KiB (keel's
 *           populate-ahead chunk)
 * Run: cc -O2 bench/faultcost.c -o /tmp/faultcost && /tmp/faultcost */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static double seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(void) {
  const size_t size = (size_t)64 << 20, page = 4096;
  static const struct { const char *name; size_t chunk; } modes[] = {
    { "touch", 0 }, { "pop64M", (size_t)64 << 20 }, { "pop64K", (size_t)64 << 10 }, { "pop16K", (size_t)16 << 10 },
  };
  for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
    double best = 1e9;
    for (int r = 0; r < 5; r++) {
      char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) { perror("mmap"); return 1; }
      double t0 = seconds();
      if (modes[m].chunk != 0)
        for (size_t o = 0; o < size; o += modes[m].chunk)
          if (madvise(p + o, modes[m].chunk, MADV_POPULATE_WRITE) != 0) { perror("madvise(MADV_POPULATE_WRITE)"); return 1; }
      for (size_t o = 0; o < size; o += page) p[o] = 1;
      double t = seconds() - t0;
      if (t < best) best = t;
      munmap(p, size);
    }
    printf("%-7s %7.2f ms per 64 MiB, %.2f us per 4 KiB page\n", modes[m].name, best * 1e3, best * 1e6 / (double)(size / page));
  }
  return 0;
}
