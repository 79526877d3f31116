/* plugin.c — a library the linking tests load with dlopen after start-up.
 * It allocates with every member of the malloc family and frees what the
 * host hands it, so a mode in which a late-loaded library binds to glibc's
 * malloc instead of keel's makes the host's checks (or keel's free checks)
 * fail loudly. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

void *plug_alloc(int kind, size_t n) {
  void *p = NULL;
  switch (kind) {
  case 0: p = malloc(n); break;
  case 1: p = calloc(1, n); break;
  case 2: p = realloc(malloc(8), n); break;
  case 3: p = aligned_alloc(64, n); break;
  case 4: if (posix_memalign(&p, 128, n) != 0) p = NULL; break;
  case 5: p = memalign(256, n); break;
  case 6: p = valloc(n); break;
  case 7: p = strndup("plugin-string-plugin-string", n); break;
  case 8: p = reallocarray(NULL, n, 1); break;
  default: return NULL;
  }
  if (p) memset(p, 0x5A, n < 8 ? n : 8);
  return p;
}
#define PLUG_KINDS 9

int plug_kinds(void) { return PLUG_KINDS; }
void plug_free(void *p) { free(p); }
size_t plug_usable(void *p) { return malloc_usable_size(p); }
void *plug_malloc_addr(void) { return (void *)&malloc; }
