/* prim.h — the contract between keel and the operating system. Only
 * src/prim/<os>.c implements it; nothing else in keel calls mmap, madvise,
 * reads the environment or writes to a file descriptor.
 *
 * Preconditions, stated once: sizes and addresses passed in are multiples of
 * kl_prim_page_size(); alignments are powers of two that are multiples of it.
 * No function here allocates through malloc, takes a lock, or may be called
 * recursively into keel. Failures return NULL / false and never abort. */
#ifndef KL_PRIM_H
#define KL_PRIM_H
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct kl_prim_info_s {
  size_t page_size;        /* OS page, 4096 on x86-64 Linux */
  bool   has_remap;        /* can grow/move a mapping without copying (mremap) */
  bool   has_overcommit;   /* untouched memory costs nothing */
} kl_prim_info_t;

void   kl_prim_init(kl_prim_info_t *info);
size_t kl_prim_page_size(void);

/* Map `size` bytes of zeroed read-write memory whose address A satisfies
 * (A + offset) % align == 0. NULL on failure. */
void  *kl_prim_alloc_aligned(size_t size, size_t align, size_t offset);
/* Same, trying `hint` first (the secure build's random segment addresses). */
void  *kl_prim_alloc_aligned_hint(size_t size, size_t align, void *hint);
/* Ask for transparent huge pages on a range (advice; false if unsupported). */
bool   kl_prim_hugepage(void *addr, size_t size);
/* Fault the pages of a range in now, writable, in one call (cheaper than
 * touching them one by one); false if the OS cannot or would not. */
bool   kl_prim_populate(void *addr, size_t size);
/* Make a range inaccessible (guard pages). */
bool   kl_prim_protect(void *addr, size_t size);
/* Unmap a range (or part of one) obtained above. */
bool   kl_prim_free(void *addr, size_t size);
/* Give the pages back to the OS; the range stays mapped and reads as zero. */
bool   kl_prim_purge(void *addr, size_t size);
/* Give back several ranges (kl_prim_purge on each), in as few system
 * calls as the OS allows. */
typedef struct { void *addr; size_t size; } kl_prim_range_t;
void   kl_prim_purge_ranges(const kl_prim_range_t *r, size_t n);
/* Which of the OS pages of [addr, addr + size) are resident: one byte
 * each into vec (nonzero: resident); false if unknown. */
bool   kl_prim_resident(void *addr, size_t size, uint8_t *vec);
/* Grow or shrink a mapping in place; false if the neighbours are taken. */
bool   kl_prim_resize_in_place(void *addr, size_t old_size, size_t new_size);
/* Move the old_size bytes at addr onto the start of `target`, a reservation
 * of new_size >= old_size bytes from kl_prim_alloc_aligned, and grow them to
 * new_size there (fresh zero pages after the moved ones), as one kernel
 * mapping (two under valgrind, whose mremap mishandles the grown part). The
 * source must lie within one kernel mapping; one that does not is refused
 * before anything changes. Returns false if unsupported or it failed; the
 * reservation is then still there, zero, and the source too. */
bool   kl_prim_move(void *addr, size_t old_size, void *target, size_t new_size);

/* The value of environment variable `name`, or NULL. Never allocates. */
const char *kl_prim_getenv(const char *name);
/* Write all of buf to standard error; ignores failures. */
void   kl_prim_write_stderr(const char *buf, size_t len);
/* Monotonic clock in milliseconds. */
uint64_t kl_prim_clock_ms(void);
/* 64 random bits from the OS, without allocating (AT_RANDOM on Linux). */
uint64_t kl_prim_random(void);
/* Abort the process (SIGABRT). */
_Noreturn void kl_prim_abort(void);

/* Call `done(arg)` when the calling thread exits. Set up once per process
 * with kl_prim_thread_key_init, then per thread with kl_prim_thread_register.
 * May run for a thread more than once if keel is used again after `done`. */
bool   kl_prim_thread_key_init(void (*done)(void *));
void   kl_prim_thread_register(void *arg);

/* Resident memory of this process in bytes (0 if unknown). No allocation. */
size_t kl_prim_rss(void);
/* Start a detached helper thread running fn(arg); false on failure. It
 * may allocate (through keel), so call it only from a safe point. */
bool   kl_prim_thread_start(void *(*fn)(void *), void *arg);
/* Sleep for `ms` milliseconds. */
void   kl_prim_sleep_ms(unsigned ms);
/* Give the CPU to another thread (a spin lock's holder may be preempted). */
void   kl_prim_yield(void);
/* Process id; run `child` in the child after fork() (registered once). */
long   kl_prim_pid(void);
bool   kl_prim_atfork_child(void (*child)(void));
/* fork() handlers: `prepare` before, `parent` and `child` after (registered once). */
bool   kl_prim_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void));

/* Unique per live thread, never 0, cheap (the TLS base register). */
static inline uintptr_t kl_prim_thread_id(void) {
#if defined(__x86_64__) || defined(__aarch64__)
  return (uintptr_t)__builtin_thread_pointer();
#else
  static __thread char kl_tid_anchor;
  return (uintptr_t)&kl_tid_anchor;
#endif
}
#endif
