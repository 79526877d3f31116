/* dlopen.c — dlopen/dlclose a library that allocates (dlib.c), in a loop.
 * Blocks the library made are freed after it is unloaded; its constructor
 * and destructor allocate and free; RSS must stay flat.
 *
 *   dlopen LIBRARY [ROUNDS] */
#include <dlfcn.h>
#include <stdint.h>
#include "rel.h"
#include "../harness.h"

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: dlopen LIBRARY [ROUNDS]\n"); return 2; }
  int rounds = argc > 2 ? atoi(argv[2]) : 2000;
  void *held[32][8] = { { 0 } };
  long rss0 = 0, bad = 0;
  for (int r = 0; r < rounds; r++) {
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
    int (*make)(void **, int, size_t, int) = (int (*)(void **, int, size_t, int))dlsym(h, "dlib_make");
    if (!make) { fprintf(stderr, "dlsym: %s\n", dlerror()); return 1; }
    void **slot = held[r % 32];
    for (int i = 0; i < 8; i++) if (slot[i]) {
      unsigned char *b = slot[i];
      if (b[0] != (unsigned char)(r - 32) || b[1000] != (unsigned char)(r - 32)) bad++;
      free(slot[i]);    /* made by a library unloaded long ago */
    }
    size_t size = 1001 + (size_t)(r % 7) * 3000;
    if (make(slot, 8, size, (unsigned char)r) != 8) { bad++; memset(slot, 0, 8 * sizeof *slot); }
    if (dlclose(h)) { fprintf(stderr, "dlclose: %s\n", dlerror()); bad++; }
    if (r == rounds / 10) rss0 = rel_rss_kib();
  }
  for (int s = 0; s < 32; s++) for (int i = 0; i < 8; i++) free(held[s][i]);
  long rss1 = rel_rss_kib();
  printf("dlopen: %d rounds, RSS %ld -> %ld KiB, %ld bad blocks\n", rounds, rss0, rss1, bad);
  CHECK(bad == 0);
  if (!getenv("REL_NO_RSS")) CHECKF(rss1 <= rss0 + 8192, "RSS grew %ld -> %ld KiB", rss0, rss1);
  return KL_DONE();
}
