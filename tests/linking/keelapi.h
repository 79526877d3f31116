/* keelapi.h — how the linking tests reach keel's own API in every mode.
 * With KL_DIRECT (dynamic link, static archive, fully static) the keel_*
 * functions are linked by name. Without it (LD_PRELOAD: the program is not
 * linked against keel at all) they are looked up with dlsym in the global
 * scope, where the preloaded library lives. Either way `kl_is_keel(p)` says
 * whether p is a live block of the calling thread's keel heap, so a mode that
 * silently falls back to glibc's malloc fails its checks. */
#ifndef KL_LINKING_KEELAPI_H
#define KL_LINKING_KEELAPI_H
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <keel.h>
#ifndef KL_DIRECT
#include <dlfcn.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int (*version)(void);
  keel_heap_t *(*heap_default)(void);
  bool (*heap_contains)(const keel_heap_t *, const void *);
  void (*stats_get)(keel_stats_t *);
} kl_api_t;

static inline kl_api_t kl_api(void) {
  kl_api_t a;
#ifdef KL_DIRECT
  a.version = keel_version; a.heap_default = keel_heap_default;
  a.heap_contains = keel_heap_contains; a.stats_get = keel_stats_get;
#else
  /* The casts go through void * because ISO C has no function-pointer cast
   * from dlsym; POSIX guarantees this one works. */
  *(void **)&a.version = dlsym(RTLD_DEFAULT, "keel_version");
  *(void **)&a.heap_default = dlsym(RTLD_DEFAULT, "keel_heap_default");
  *(void **)&a.heap_contains = dlsym(RTLD_DEFAULT, "keel_heap_contains");
  *(void **)&a.stats_get = dlsym(RTLD_DEFAULT, "keel_stats_get");
  if (!a.version || !a.heap_default || !a.heap_contains || !a.stats_get) {
    fprintf(stderr, "keel is not loaded in this process (no keel_* symbols)\n");
    exit(2);
  }
#endif
  return a;
}

/* True when p is a live block that keel handed to this thread. */
static inline bool kl_is_keel(const void *p) {
  kl_api_t a = kl_api();
  return p != NULL && a.heap_contains(a.heap_default(), p);
}

#ifdef __cplusplus
}
#endif
#endif
