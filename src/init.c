/* init.c — process start, on the first call from any thread.
 *
 * There is no constructor: static state is constant-initialized, and the
 * first allocation anywhere (another library's constructor, before main,
 * during exit) misses the fast path and lands here through
 * kl_heap_init_thread. Nothing here allocates through libc, so there is no
 * recursion into malloc. keel never tears anything down at exit: frees that
 * arrive after main returns find everything as it was. */
#include "internal/internal.h"

kl_prim_info_t kl_os = { .page_size = 4096 };

/* 0: not started, 1: one thread initializing, 2: done. */
static _Atomic(int) init_state;

bool kl_process_init(void) {
  /* Acquire pairs with the release below: kl_os and the options are set. */
  if (kl_likely(kl_load_acquire(&init_state) == 2)) return true;
  int expected = 0;
  if (atomic_compare_exchange_strong_explicit(&init_state, &expected, 1,
        memory_order_acquire, memory_order_relaxed)) {
    kl_prim_info_t info;
    kl_prim_init(&info);
    kl_os = info;
    kl_options_init();
#if KL_CHECKED
    kl_assert(kl_class_tables_ok());
#endif
    kl_prim_thread_key_init(kl_heap_thread_done);
    kl_store_release(&init_state, 2);
    /* After the state is 2: should registering allocate, that malloc
     * finds keel ready instead of waiting on this very initialization. */
    kl_segment_atfork_init();
    kl_heap_atfork_init();
    if (kl_option(KL_OPT_VERBOSE))
      kl_message("keel: %s, on_error=%s, purge_delay=%ldms, show_stats=%ld, huge_pages=%ld, purge_thread=%ld, "
                 "report_interval=%ldms, populate=%ld\n",
                 KEEL_VERSION_STRING, kl_option(KL_OPT_ON_ERROR_WARN) ? "warn" : "abort",
                 kl_option(KL_OPT_PURGE_DELAY), kl_option(KL_OPT_SHOW_STATS), kl_option(KL_OPT_HUGE_PAGES),
                 kl_option(KL_OPT_PURGE_THREAD), kl_option(KL_OPT_REPORT_INTERVAL), kl_option(KL_OPT_POPULATE));
    return true;
  }
  /* Another thread is initializing; it takes microseconds and never waits
   * on us, so spinning cannot deadlock. */
  while (kl_load_acquire(&init_state) != 2) kl_spin_pause();
  return true;
}
