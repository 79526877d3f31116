/* Determinism: runs a fixed sequence of allocations and frees and prints a
 * hash of every address it got. tests/suites/wasm.sh runs each build
 * (emscripten with and without memory growth, wasi) three times and
 * requires the same hash every time. Prints "hash XXXXXXXX". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { SLOTS = 2048, STEPS = 200000 };
static void *slot[SLOTS];

static uint32_t run(void) {
  uint32_t rng = 12345, h = 2166136261u;
  for (int s = 0; s < STEPS; s++) {
    rng ^= rng << 13; rng ^= rng >> 17; rng ^= rng << 5;
    int i = (int)(rng % SLOTS);
    if (slot[i]) { free(slot[i]); slot[i] = NULL; continue; }
    size_t n = (rng >> 12) % 100 < 90 ? (rng >> 20) % 200 : (rng >> 16) % 40000;
    slot[i] = (rng & 0x100) ? malloc(n) : aligned_alloc(64, n);
    uintptr_t a = (uintptr_t)slot[i];
    for (int k = 0; k < 4; k++) { h ^= (a >> (8 * k)) & 0xff; h *= 16777619u; }
  }
  for (int i = 0; i < SLOTS; i++) { free(slot[i]); slot[i] = NULL; }
  return h;
}

int main(void) {
  printf("hash %08x\n", (unsigned)run());
  return 0;
}
