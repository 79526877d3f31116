/* modes.c — the C program of the linking tests, built once per linking mode
 * (LD_PRELOAD, -lkeel, libkeel.a in a dynamic executable, fully static).
 * It asserts that keel, not glibc, serves malloc in that mode: the
 * executable's own calls, libc's internal allocations (strdup, asprintf,
 * getline, fopen), other threads, and (with KL_PLUGIN) a plugin loaded with
 * dlopen, with blocks crossing between plugin and host in both directions.
 * It ends by freeing memory after main returns (atexit, a destructor) while
 * a detached thread is still allocating: the process must exit cleanly.
 * argv[1] names the mode, for messages only; argv[2] is the plugin path. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include "keelapi.h"
#include "../harness.h"
#if !defined(KL_FULLY_STATIC)
#include <dlfcn.h>
#endif

static void fill(void *p, size_t n, unsigned char v) { memset(p, v, n); }
static int check(const void *p, size_t n, unsigned char v) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++) if (c[i] != v) return 0;
  return 1;
}

/* Which object defines the malloc the dynamic linker binds (modes 1-3):
 * it must be the object that also defines keel_version. */
static void check_binding(void) {
#if !defined(KL_FULLY_STATIC)
  void *m = dlsym(RTLD_DEFAULT, "malloc");
#ifdef KL_DIRECT
  /* Linked in: the address of our own reference (an archive-linked
   * executable does not export keel_version, but it is in the executable). */
  void *k = (void *)&keel_version;
#else
  void *k = dlsym(RTLD_DEFAULT, "keel_version");
#endif
  Dl_info im, ik;
  CHECK(m && k);
  if (!m || !k) return;
  CHECK(dladdr(m, &im) && dladdr(k, &ik));
  CHECKF(im.dli_fbase == ik.dli_fbase, "malloc comes from %s, keel from %s",
         im.dli_fname, ik.dli_fname);
  printf("malloc served by %s\n", im.dli_fname);
#endif
}

static void check_family(void) {
  void *p;
  p = malloc(40); CHECK(kl_is_keel(p)); fill(p, 40, 1); CHECK(check(p, 40, 1)); free(p);
  p = calloc(10, 10); CHECK(kl_is_keel(p) && check(p, 100, 0)); free(p);
  p = realloc(NULL, 50); CHECK(kl_is_keel(p)); p = realloc(p, 500); CHECK(kl_is_keel(p)); free(p);
  p = aligned_alloc(4096, 4096); CHECK(kl_is_keel(p) && ((uintptr_t)p & 4095) == 0); free(p);
  CHECK(posix_memalign(&p, 1024, 100) == 0 && kl_is_keel(p) && ((uintptr_t)p & 1023) == 0); free(p);
  p = memalign(512, 10); CHECK(kl_is_keel(p) && ((uintptr_t)p & 511) == 0); free(p);
  p = valloc(100); CHECK(kl_is_keel(p)); free(p);
  p = malloc(100); CHECK(malloc_usable_size(p) >= 100); free(p);
  /* libc's own allocations: the block is made inside libc, freed here. */
  char *s = strdup("a string from libc"); CHECK(kl_is_keel(s)); free(s);
  CHECK(asprintf(&s, "%d-%s", 42, "x") > 0 && kl_is_keel(s)); free(s);
  FILE *f = fopen("/proc/self/status", "r");
  CHECK(f != NULL);
  if (f) {
    char *line = NULL; size_t cap = 0;
    CHECK(getline(&line, &cap, f) > 0 && kl_is_keel(line));
    free(line); fclose(f);
  }
}

static void *thread_main(void *arg) {
  void *blocks[256];
  for (int r = 0; r < 50; r++) {
    for (int i = 0; i < 256; i++) { blocks[i] = malloc(16 + i * 8); fill(blocks[i], 16, (unsigned char)i); }
    for (int i = 0; i < 256; i++) { if (!check(blocks[i], 16, (unsigned char)i)) return NULL; free(blocks[i]); }
  }
  void *p = malloc(64);
  int ok = kl_is_keel(p);
  free(p);
  return ok ? arg : NULL;
}

static void check_threads(void) {
  pthread_t t[4];
  for (int i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, thread_main, (void *)(intptr_t)(i + 1)) == 0);
  for (int i = 0; i < 4; i++) { void *r = NULL; pthread_join(t[i], &r); CHECK(r == (void *)(intptr_t)(i + 1)); }
}

#if defined(KL_PLUGIN)
static void check_plugin(const char *path) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  CHECKF(h != NULL, "dlopen %s: %s", path, dlerror());
  if (!h) return;
  void *(*alloc)(int, size_t); void (*pfree)(void *); size_t (*usable)(void *);
  int (*kinds)(void); void *(*maddr)(void);
  *(void **)&alloc = dlsym(h, "plug_alloc"); *(void **)&pfree = dlsym(h, "plug_free");
  *(void **)&usable = dlsym(h, "plug_usable"); *(void **)&kinds = dlsym(h, "plug_kinds");
  *(void **)&maddr = dlsym(h, "plug_malloc_addr");
  CHECK(alloc && pfree && usable && kinds && maddr);
  if (!alloc || !pfree || !usable || !kinds || !maddr) return;
  CHECKF(maddr() == dlsym(RTLD_DEFAULT, "malloc"), "the plugin binds another malloc");
  /* plugin allocates, host frees */
  for (int k = 0; k < kinds(); k++) {
    void *p = alloc(k, 24);
    CHECKF(kl_is_keel(p), "plugin allocation kind %d is not keel's", k);
    CHECK(malloc_usable_size(p) >= 24);
    free(p);
  }
  /* host allocates, plugin frees and measures */
  for (int i = 0; i < 100; i++) {
    void *p = malloc(8 + i * 24);
    CHECK(usable(p) >= (size_t)(8 + i * 24));
    pfree(p);
  }
  void *a = aligned_alloc(256, 300); pfree(a);
  CHECK(dlclose(h) == 0);
}
#endif

/* ---- frees after main returns ------------------------------------------- */
static void *kept[64];
static void free_kept(void) { for (int i = 0; i < 64; i++) { free(kept[i]); kept[i] = NULL; } }
static char *in_dtor;
__attribute__((destructor)) static void late_free(void) { free(in_dtor); in_dtor = malloc(10); free(in_dtor); }

static void *exit_racer(void *arg) {
  /* Still allocating and freeing when main returns and exit() runs. */
  for (;;) {
    void *b[32];
    for (int i = 0; i < 32; i++) { b[i] = malloc(32 + i * 16); if (b[i]) fill(b[i], 32, 7); }
    for (int i = 0; i < 32; i++) free(b[i]);
  }
  return arg;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "?";
  kl_api_t api = kl_api();
  CHECK(api.version() == KEEL_VERSION);
  check_binding();
  check_family();
  check_threads();
#if defined(KL_PLUGIN)
  if (argc > 2) check_plugin(argv[2]);
  else CHECKF(0, "no plugin path given");
#endif
  for (int i = 0; i < 64; i++) kept[i] = malloc(1 + i * 100);
  atexit(free_kept);
  in_dtor = strdup("freed by a destructor");
  pthread_t t;
  pthread_attr_t at; pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  CHECK(pthread_create(&t, &at, exit_racer, NULL) == 0);
  usleep(2000);
  printf("mode %s\n", mode);
  return KL_DONE();
}
