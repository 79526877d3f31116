/* atomic.h — the C11 atomics keel uses, with the orders spelled out at each
 * call site (no implicit seq_cst anywhere). Short names only; the comment on
 * why each order suffices lives where it is used. */
#ifndef KL_ATOMIC_H
#define KL_ATOMIC_H
#include <stdatomic.h>
#include <stdint.h>

#define kl_load_relaxed(p)      atomic_load_explicit((p), memory_order_relaxed)
#define kl_load_acquire(p)      atomic_load_explicit((p), memory_order_acquire)
#define kl_store_relaxed(p, v)  atomic_store_explicit((p), (v), memory_order_relaxed)
#define kl_store_release(p, v)  atomic_store_explicit((p), (v), memory_order_release)
#define kl_exchange_acquire(p, v) atomic_exchange_explicit((p), (v), memory_order_acquire)
#define kl_exchange_acq_rel(p, v) atomic_exchange_explicit((p), (v), memory_order_acq_rel)
/* weak CAS in a loop: success order as given, failure relaxed (the loop re-reads) */
#define kl_cas_weak(p, expected, desired, order) \
  atomic_compare_exchange_weak_explicit((p), (expected), (desired), (order), memory_order_relaxed)

static inline void kl_spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}
#endif
