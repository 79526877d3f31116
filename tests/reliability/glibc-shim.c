/* glibc-shim.c — keel_* implemented on the system allocator, so that each
 * reliability program can be run on glibc for comparison (a test that
 * fails on glibc too is testing the test, not keel). Statistics are empty. */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include "keel.h"
void *keel_malloc(size_t n) { return malloc(n); }
void *keel_calloc(size_t c, size_t n) { return calloc(c, n); }
void *keel_realloc(void *p, size_t n) { return realloc(p, n); }
void keel_free(void *p) { free(p); }
void keel_free_sized(void *p, size_t n) { (void)n; free(p); }
void *keel_aligned_alloc(size_t a, size_t n) { return aligned_alloc(a, n); }
int keel_posix_memalign(void **o, size_t a, size_t n) { return posix_memalign(o, a, n); }
size_t keel_usable_size(const void *p) { return malloc_usable_size((void *)p); }
int keel_version(void) { return 0; }
void keel_stats_get_sized(keel_stats_t *s, size_t n) { memset(s, 0, n); }
void (keel_stats_get)(keel_stats_t *s) { memset(s, 0, sizeof *s); }
