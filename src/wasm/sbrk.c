/* sbrk/brk for emscripten programs linked with -sMALLOC=none, which drops
 * emscripten's own sbrk. keel does not use sbrk (it calls memory.grow
 * itself); this is only for program code that does. It lives in its own
 * object so a program that never calls sbrk pays nothing for it.
 *
 * The break sits at the end of linear memory: sbrk(n) grows memory by
 * whole pages and hands out [old break, old break + n). If keel (or anyone)
 * grew memory since, the break first jumps to the new end, so sbrk never
 * hands out memory keel owns; keel in turn sees that memory grew under it
 * and starts a new top (see grow() in keel.c).
 * With -pthread (the -mt archive) sbrk holds keel's lock, so the two never
 * grow memory at the same time.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#define WASM_PAGE 65536u

#ifdef __EMSCRIPTEN__
extern void emscripten_notify_memory_growth(size_t memory_index);
#endif

static uintptr_t brk_now, brk_end;   /* the break, and memory's end when we set it */

static void *move_break(intptr_t increment) {
  uintptr_t end = __builtin_wasm_memory_size(0) * WASM_PAGE;
  if (end != brk_end) brk_now = brk_end = end;     /* someone else grew memory */
  uintptr_t old = brk_now;
  if (increment < 0 || (uintptr_t)increment > UINT32_MAX - old) { errno = ENOMEM; return (void *)-1; }
  uintptr_t want = old + (uintptr_t)increment;
  if (want > end) {
    size_t pages = (want - end + WASM_PAGE - 1) / WASM_PAGE;
    if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) { errno = ENOMEM; return (void *)-1; }
#ifdef __EMSCRIPTEN__
    emscripten_notify_memory_growth(0);
#endif
    brk_end = end + pages * WASM_PAGE;
  }
  brk_now = want;
  return (void *)old;
}

#ifdef __EMSCRIPTEN_PTHREADS__
void kl_wasm_lock(void), kl_wasm_unlock(void);   /* keel.c */
#endif

void *sbrk(intptr_t increment) {
#ifdef __EMSCRIPTEN_PTHREADS__
  kl_wasm_lock();
  void *p = move_break(increment);
  kl_wasm_unlock();
  return p;
#else
  return move_break(increment);
#endif
}

int brk(void *addr) {
  uintptr_t cur = (uintptr_t)sbrk(0);
  return sbrk((intptr_t)((uintptr_t)addr - cur)) == (void *)-1 ? -1 : 0;
}
