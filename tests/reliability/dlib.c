/* dlib.c — the library dlopen.c loads and unloads in a loop. It allocates
 * in its constructor, hands blocks to its caller (freed after dlclose, when
 * this code is gone), keeps a thread-local block that a thread of its own
 * allocates, and frees what it kept in its destructor. Built as a shared
 * object linked to the keel under test. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "keel.h"

static void *kept[16];
static __thread char *tls_block;

__attribute__((constructor)) static void dlib_init(void) {
  for (int i = 0; i < 16; i++) { kept[i] = keel_malloc(32 << i); if (kept[i]) memset(kept[i], i, 32 << i); }
}
__attribute__((destructor)) static void dlib_fini(void) {
  for (int i = 0; i < 16; i++) {
    unsigned char *b = kept[i];
    if (b && (b[0] != i || b[(32 << i) - 1] != i)) abort();
    keel_free(kept[i]);
  }
}

static void *dlib_thread(void *arg) {
  tls_block = keel_malloc(4000);
  if (!tls_block) return NULL;
  memset(tls_block, 0x5a, 4000);
  char *out = keel_realloc(tls_block, 9000);
  return out;
}

/* Returns n blocks of `size` filled with `byte`, one of them made by a
 * thread this library starts and joins; the caller frees them. */
__attribute__((visibility("default"))) int dlib_make(void **out, int n, size_t size, int byte) {
  pthread_t t;
  void *r = NULL;
  if (pthread_create(&t, NULL, dlib_thread, NULL) || pthread_join(t, &r) || !r) return 0;
  if (((unsigned char *)r)[3999] != 0x5a) return 0;
  keel_free(r);
  for (int i = 0; i < n; i++) {
    out[i] = (i & 1) ? malloc(size) : keel_calloc(1, size);
    if (!out[i]) return i;
    memset(out[i], byte, size);
  }
  return n;
}
