/* Code-size probe (bench/wasm/run.sh): a program that calls malloc, calloc,
 * realloc, aligned_alloc, posix_memalign, malloc_usable_size and free. Built
 * once per allocator; -DKL_BASELINE supplies trivial stand-ins instead, so
 * (size with an allocator) - (baseline size) is what the allocator costs.
 * Sizes come from argc so nothing folds away. */
#include <stdlib.h>
#include <malloc.h>

#ifdef KL_BASELINE
static char arena[1 << 16];
static size_t used;
void *malloc(size_t n) { void *p = arena + used; used += n; return p; }
void *calloc(size_t c, size_t n) { return malloc(c * n); }
void *realloc(void *p, size_t n) { (void)p; return malloc(n); }
void *aligned_alloc(size_t a, size_t n) { (void)a; return malloc(n); }
int posix_memalign(void **o, size_t a, size_t n) { (void)a; *o = malloc(n); return 0; }
size_t malloc_usable_size(void *p) { return (size_t)p; }
void free(void *p) { used -= (size_t)p & 1; }
#endif

int main(int argc, char **argv) {
  (void)argv;
  size_t n = (size_t)argc * 24;
  char *a = malloc(n), *b = calloc(argc, n), *c, *d;
  a = realloc(a, n * 3);
  c = aligned_alloc(64, n);
  if (posix_memalign((void **)&d, 128, n)) d = 0;
  size_t u = malloc_usable_size(a) + malloc_usable_size(b);
  free(a); free(b); free(c); free(d);
  return (int)(u & 1);
}
