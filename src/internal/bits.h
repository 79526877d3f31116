/* bits.h — branch hints, attributes, alignment and checked arithmetic.
 * Every size computed from user input at an API entry goes through
 * kl_mul_overflow / kl_add_overflow: there is no other multiplication of
 * untrusted sizes in keel. */
#ifndef KL_BITS_H
#define KL_BITS_H
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define kl_likely(x)    __builtin_expect(!!(x), 1)
#define kl_unlikely(x)  __builtin_expect(!!(x), 0)
#define kl_noinline     __attribute__((noinline))
#define kl_inline       static inline __attribute__((always_inline))
#define KL_HOT          __attribute__((aligned(64)))   /* a fast path's function: see override.c */
/* A function whose reads race with the program's writes on purpose (a scan
 * of every block's freed mark, live blocks included: holes.c's punch):
 * ThreadSanitizer is told not to report them. */
#if defined(__has_attribute)
#if __has_attribute(no_sanitize)
#define kl_no_tsan      __attribute__((no_sanitize("thread")))
#endif
#endif
#ifndef kl_no_tsan
#define kl_no_tsan
#endif
#define kl_cold         __attribute__((cold, noinline))
#define kl_hidden       __attribute__((visibility("hidden")))
#define kl_public       __attribute__((visibility("default")))

static inline bool kl_mul_overflow(size_t a, size_t b, size_t *out) {
  return __builtin_mul_overflow(a, b, out);
}
static inline bool kl_add_overflow(size_t a, size_t b, size_t *out) {
  return __builtin_add_overflow(a, b, out);
}
static inline bool kl_is_pow2(size_t x) { return x != 0 && (x & (x - 1)) == 0; }
/* `a` must be a power of two; callers guarantee x + a does not overflow. */
static inline size_t kl_align_up(size_t x, size_t a) { return (x + a - 1) & ~(a - 1); }
static inline uintptr_t kl_align_down(uintptr_t x, size_t a) { return x & ~(uintptr_t)(a - 1); }
/* --*n, and whether the result is zero or negative as a signed 32-bit
 * value. On x86-64 this is one subtract and one branch on its flags; gcc
 * would test the result again (two more instructions on free's path).
 * asm goto with an output needs gcc 11 or clang 11; older compilers get
 * the plain C. */
#if defined(__x86_64__) && ((defined(__clang__) && __clang_major__ >= 11) || \
                            (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
#define KL_ASM_GOTO_OUTPUT 1
#endif
static inline __attribute__((always_inline)) bool kl_dec_le0(uint32_t *n) {
#if defined(KL_ASM_GOTO_OUTPUT)
  __asm__ goto("subl $1, %0\n\tjle %l[le0]" : "+m"(*n) : : "cc" : le0);
  return false;
le0:
  return true;
#else
  return (int32_t)--*n <= 0;
#endif
}
/* index of the highest set bit; x != 0 */
static inline unsigned kl_bsr(size_t x) { return (unsigned)(63 - __builtin_clzll((unsigned long long)x)); }

#if defined(KL_CHECKED) && KL_CHECKED
void kl_assert_fail(const char *expr, const char *file, int line);
#define kl_assert(x) ((x) ? (void)0 : kl_assert_fail(#x, __FILE__, __LINE__))
#else
#define kl_assert(x) ((void)0)
#endif
#endif
