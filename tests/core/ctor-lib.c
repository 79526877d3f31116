/* ctor-lib.c — a shared library whose constructor allocates before the
 * program's main (and before anything else asked keel for memory), and whose
 * destructor frees after main returned. Preloaded by the core suite. */
#include <stdlib.h>
#include <string.h>
static char *held;
__attribute__((constructor)) static void lib_init(void) {
  held = malloc(4096);
  memset(held, 7, 4096);
  char *tmp = calloc(100, 100);
  free(tmp);
}
__attribute__((destructor)) static void lib_fini(void) {
  for (int i = 0; i < 4096; i++) if (held[i] != 7) abort();
  free(held);
}
