/* Time and peak-memory workload for bench/wasm/run.sh: keeps `live` blocks
 * alive and replaces a pseudo-random one `ops` times (free, then allocate a
 * new size: 94% up to 128 bytes, 5.9% up to 4 KiB, 0.1% up to 64 KiB). Each
 * block gets one byte written at each end, as a program would touch it.
 * Prints "ms <wall time of the replace loop> cpu <its CPU time> peak <final
 * linear memory bytes>".
 * Usage: bench LIVE OPS */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <emscripten.h>

/* CPU time of the node process (user + system), which a loaded machine
 * inflates far less than wall time: run.sh reports this one. */
EM_JS(double, cpu_ms, (void), {
  var u = process.cpuUsage();
  return (u.user + u.system) / 1000;
});

static uint32_t rng = 2463534242u;
static uint32_t next(void) { rng ^= rng << 13; rng ^= rng >> 17; rng ^= rng << 5; return rng; }
static size_t pick(void) {
  uint32_t r = next() % 1000;
  if (r < 940) return 1 + next() % 128;
  if (r < 999) return 1 + next() % 4096;
  return 1 + next() % 65536;
}
static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  size_t live = argc > 1 ? strtoul(argv[1], 0, 10) : 4096;
  long ops = argc > 2 ? atol(argv[2]) : 1000000;
  unsigned char **slot = calloc(live, sizeof *slot);
  size_t *len = calloc(live, sizeof *len);
  unsigned sum = 0;
  for (size_t i = 0; i < live; i++) {
    len[i] = pick(); slot[i] = malloc(len[i]);
    slot[i][0] = 1; slot[i][len[i] - 1] = 2;
  }
  /* The loop runs in PARTS equal parts, each timed: the fastest part times
   * PARTS estimates the run with the machine's interruptions left out
   * (other tenants of a shared machine stall some parts, never speed one up). */
  enum { PARTS = 20 };
  double t0 = now_ms(), c0 = cpu_ms(), best = 1e300;
  for (int part = 0; part < PARTS; part++) {
    double p0 = now_ms();
    for (long k = part * (ops / PARTS); k < (part + 1) * (ops / PARTS); k++) {
      size_t i = next() % live;
      sum += slot[i][0] + slot[i][len[i] - 1];
      free(slot[i]);
      len[i] = pick(); slot[i] = malloc(len[i]);
      slot[i][0] = 1; slot[i][len[i] - 1] = 2;
    }
    double p1 = now_ms();
    if (p1 - p0 < best) best = p1 - p0;
  }
  double t1 = now_ms(), c1 = cpu_ms();
  for (size_t i = 0; i < live; i++) free(slot[i]);
  printf("ms %.1f cpu %.1f peak %lu sum %u best %.1f\n", t1 - t0, c1 - c0,
         (unsigned long)(__builtin_wasm_memory_size(0) * 65536ul), sum, best * PARTS);
  return 0;
}
