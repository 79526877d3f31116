/* keel.h — the public API of keel, a general-purpose memory allocator.
 *
 * Linking libkeel (shared or static) also replaces the whole C allocation
 * family (malloc, free, calloc, realloc, aligned_alloc, posix_memalign,
 * memalign, valloc, pvalloc, malloc_usable_size, reallocarray, ...): the
 * keel_* names below are the same allocator under names that never clash.
 *
 * Contract (identical to glibc's on x86-64):
 *  - every block is aligned to at least 16 bytes;
 *  - keel_malloc(0) returns a unique pointer that must be freed;
 *  - a request that cannot be served returns NULL with errno = ENOMEM and
 *    never aborts (sizes near SIZE_MAX, overflowing count*size);
 *  - keel_free(NULL) does nothing; keel_free preserves errno;
 *  - freeing a pointer keel did not hand out is reported on stderr and
 *    aborts (see KEEL_ON_ERROR in the README).
 */
#ifndef KEEL_H
#define KEEL_H

#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>      /* FILE, for keel_stats_print */

#ifdef __cplusplus
extern "C" {
#endif

#define KEEL_VERSION_MAJOR 1
#define KEEL_VERSION_MINOR 0
#define KEEL_VERSION_PATCH 0
/* major*10000 + minor*100 + patch; the SONAME is libkeel.so.<major>. */
#define KEEL_VERSION (KEEL_VERSION_MAJOR * 10000 + KEEL_VERSION_MINOR * 100 + KEEL_VERSION_PATCH)

#if defined(__GNUC__)
#define KEEL_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#else
#define KEEL_MALLOC_ATTR
#endif

/* Allocate `size` bytes, 16-byte aligned. NULL and ENOMEM on failure. */
KEEL_MALLOC_ATTR void *keel_malloc(size_t size);

/* Allocate count*size zeroed bytes. NULL and ENOMEM if the product
 * overflows or cannot be served. */
KEEL_MALLOC_ATTR void *keel_calloc(size_t count, size_t size);

/* Resize `p` to `size` bytes keeping the contents up to the smaller size.
 * keel_realloc(NULL, n) is keel_malloc(n); keel_realloc(p, 0) frees p and
 * returns NULL, as glibc does. On failure returns NULL with ENOMEM and
 * leaves p valid. */
void *keel_realloc(void *p, size_t size);

/* Release a block. NULL is ignored. errno is preserved. */
void keel_free(void *p);

/* Release a block whose requested size is known (C23 free_sized). `size`
 * must be the size passed at allocation (or anything up to the usable
 * size); keel checks it in the debug build. */
void keel_free_sized(void *p, size_t size);

/* C11 aligned_alloc: `alignment` must be a power of two (else NULL and
 * EINVAL); any size is accepted. Alignments up to at least 4 MiB work. */
KEEL_MALLOC_ATTR void *keel_aligned_alloc(size_t alignment, size_t size);

/* POSIX posix_memalign: returns 0, EINVAL (alignment not a power of two
 * multiple of sizeof(void *)) or ENOMEM; *out is untouched on error. */
int keel_posix_memalign(void **out, size_t alignment, size_t size);

/* Bytes usable in the block at `p` (at least what was requested, all
 * writable). 0 for NULL. */
size_t keel_usable_size(const void *p);

/* The library's version as KEEL_VERSION encodes it (10000 for 1.0.0). */
int keel_version(void);

/* ---- first-class heaps ---------------------------------------------------
 * A heap gathers blocks that die together (a parsed document, one request)
 * so they can be freed at once, in time proportional to the heap's pages.
 * Rules:
 *  - a heap belongs to the thread that created it: only that thread may
 *    allocate from it, destroy or delete it; any other thread gets an error
 *    report (abort by default, NULL/no-op with KEEL_ON_ERROR=warn);
 *  - a block from any heap is freed with keel_free or free, from any thread;
 *    frees by other threads must happen before keel_heap_destroy starts
 *    (after it, the blocks are gone: freeing one is a use after free);
 *  - realloc (the standard one) of a heap block that must move allocates
 *    the new block from the calling thread's default heap; keel_heap_realloc
 *    keeps it in the heap;
 *  - when the creating thread exits, its heaps' blocks stay valid (freed with
 *    free), but the heap handles are dead.
 * Impossible sizes behave as in keel_malloc (NULL, ENOMEM). */
typedef struct keel_heap_s keel_heap_t;
keel_heap_t *keel_heap_new(void);                     /* NULL and ENOMEM if out of memory */
void  keel_heap_destroy(keel_heap_t *heap);           /* frees every block still in the heap, at once */
void  keel_heap_delete(keel_heap_t *heap);            /* live blocks stay valid and move to the thread's default heap */
KEEL_MALLOC_ATTR void *keel_heap_malloc(keel_heap_t *heap, size_t size);
KEEL_MALLOC_ATTR void *keel_heap_calloc(keel_heap_t *heap, size_t count, size_t size);
void *keel_heap_realloc(keel_heap_t *heap, void *p, size_t size);
KEEL_MALLOC_ATTR void *keel_heap_aligned_alloc(keel_heap_t *heap, size_t alignment, size_t size);
/* p is a live block of heap. For a thread's default heap, blocks above
 * 256 KiB (128 KiB in the secure build) are not tracked per thread: any
 * live one counts; and a block of up to 1 KiB that malloc reused after
 * this thread freed it for another thread stays that thread's (its memory
 * never changes owner). */
bool  keel_heap_contains(const keel_heap_t *heap, const void *p);
/* Calls visit(block, usable_size, arg) once per live block, until it
 * returns false. Returns false if a visit stopped it, true otherwise. The
 * visitor must not allocate from or free into the heap. On a default heap
 * it visits the blocks up to 256 KiB (128 KiB in the secure build; larger
 * ones are not tracked per thread). */
bool  keel_heap_visit(keel_heap_t *heap, bool (*visit)(void *block, size_t size, void *arg), void *arg);
/* The calling thread's own heap, where malloc allocates: usable with
 * keel_heap_malloc, _calloc, _realloc, _aligned_alloc, _contains and
 * _visit, but not destroyed or deleted (it lives as long as the thread). */
keel_heap_t *keel_heap_default(void);

/* ---- options --------------------------------------------------------------
 * Each option is also an environment variable (README): KEEL_ON_ERROR,
 * KEEL_VERBOSE, KEEL_SHOW_STATS, KEEL_PURGE_DELAY, KEEL_HUGE_PAGES,
 * KEEL_PURGE_THREAD, KEEL_REPORT_INTERVAL, KEEL_POPULATE. A value set here before
 * keel's first use wins over the environment; set later, it applies from
 * then on. KEEL_REPORT (a file name) and KEEL_REPORT_PID (set by the `keel`
 * command) are environment only: they are not numbers, or not the
 * program's to set. */
typedef enum keel_option_e {
  KEEL_OPTION_ON_ERROR = 0,   /* 0 abort (default), 1 warn and ignore the call */
  KEEL_OPTION_VERBOSE = 1,    /* 0 or 1 */
  KEEL_OPTION_SHOW_STATS = 2, /* 0 or 1: print statistics at exit */
  KEEL_OPTION_PURGE_DELAY = 3, /* milliseconds before free memory goes back to the OS */
  KEEL_OPTION_HUGE_PAGES = 4,  /* 0 or 1: back segments with transparent huge pages */
  KEEL_OPTION_PURGE_THREAD = 5, /* 0 or 1: a helper thread purges idle cached segments */
  KEEL_OPTION_REPORT_INTERVAL = 6, /* 1..60000 ms between samples of the KEEL_REPORT report */
  KEEL_OPTION_POPULATE = 7     /* 0 or 1: fault memory in ahead, by one call, where it will be written */
} keel_option_t;
/* 0 on success; EINVAL for an unknown option or a value out of range. */
int keel_option_set(keel_option_t option, long value);
/* The value in force; -1 for an unknown option. */
long keel_option_get(keel_option_t option);

/* ---- statistics ----------------------------------------------------------
 * Counters are kept per thread without atomics on the fast paths and merged
 * when read. "In use" counts whole blocks (their usable size), so it is at
 * least what the program asked for. Blocks freed by another thread count as
 * in use until their owner takes them back (its next slow path).
 *
 * Calls: malloc and free are counted as blocks handed out and freed less
 * those the other members account for; the allocating members count calls
 * that returned a block; realloc, reallocarray and malloc_usable_size count
 * every call; free_sized counts calls with a non-NULL pointer (with
 * free_aligned_sized). The standard names and the keel_* ones count alike
 * (keel_calloc is calloc, keel_usable_size is malloc_usable_size, ...);
 * keel_heap_* allocations count as malloc, keel_heap_realloc as realloc. */
#define KEEL_STATS_CLASSES 48
/* The size-class table goes on past the 48 entries of 1.0.0, in
 * classes_more at the struct's end: entry i of the whole table is
 * *KEEL_STATS_CLASS(&s, i), for i < KEEL_STATS_CLASSES_ALL, in increasing
 * block size; entries past the last class are zero. A 1.0.0 binary sees
 * the first 48 entries (blocks up to 96 KiB); its totals count every class. */
#define KEEL_STATS_CLASSES_MORE 16
#define KEEL_STATS_CLASSES_ALL (KEEL_STATS_CLASSES + KEEL_STATS_CLASSES_MORE)
#define KEEL_STATS_CLASS(s, i) \
  ((i) < KEEL_STATS_CLASSES ? &(s)->classes[(i)] : &(s)->classes_more[(i) - KEEL_STATS_CLASSES])
typedef struct keel_class_stats_s {
  size_t block_size;       /* bytes per block of this size class */
  size_t blocks_in_use;    /* live blocks */
  size_t pages;            /* pages holding this class */
} keel_class_stats_t;

typedef struct keel_stats_s {
  size_t in_use_bytes;          /* bytes in live blocks, now */
  size_t in_use_bytes_peak;     /* highest value seen at a slow path or read */
  size_t committed_bytes;       /* mapped and not given back to the OS, now */
  size_t committed_bytes_peak;  /* highest committed_bytes after any map or reuse of purged memory */
  size_t reserved_bytes;        /* address space mapped from the OS, now */
  size_t allocated_bytes_total; /* bytes in all blocks ever handed out */
  size_t freed_bytes_total;     /* bytes in all blocks ever freed */
  size_t calls_malloc, calls_calloc;
  size_t calls_realloc;         /* realloc only (reallocarray: calls_reallocarray) */
  size_t calls_free;            /* free and cfree (free_sized: calls_free_sized) */
  size_t calls_aligned;         /* the sum of the five aligned members below */
  size_t huge_blocks;           /* live blocks above 128 KiB */
  size_t threads_seen;          /* threads that ever allocated, or freed another thread's block */
  /* Whole segments (4 MiB, up to 64 pages each), not pages: */
  size_t segments_abandoned;    /* left by exiting threads */
  size_t segments_reclaimed;    /* adopted by live threads */
  size_t pages_purged;          /* free pages given back to the OS */
  size_t os_calls;              /* map, unmap and purge calls */
  keel_class_stats_t classes[KEEL_STATS_CLASSES];
  /* Not in 1.0.0 (kept at the end, so 1.0 binaries keep working: see
   * keel_stats_get below): the other family members, one count each. */
  size_t calls_reallocarray, calls_free_sized;
  size_t calls_aligned_alloc, calls_posix_memalign, calls_memalign, calls_valloc, calls_pvalloc;
  size_t calls_usable_size;     /* malloc_usable_size */
  size_t holes_purged;          /* 4 KiB pages given back from pages still holding live blocks */
  keel_class_stats_t classes_more[KEEL_STATS_CLASSES_MORE];  /* see KEEL_STATS_CLASS */
} keel_stats_t;

/* Fill the first `size` bytes of *out with the current statistics of the
 * whole process (bytes past sizeof(keel_stats_t) are zeroed). Call it as
 * keel_stats_get(&s): the macro passes the size of the caller's struct, so
 * a program keeps working with a later keel whose struct has grown. The
 * function keel_stats_get itself (what 1.0.0 binaries call, and what a
 * pointer to it or dlsym gives) fills the 1.0.0 fields, up to classes[]. */
void keel_stats_get_sized(keel_stats_t *out, size_t size);
void keel_stats_get(keel_stats_t *out);
#define keel_stats_get(out) keel_stats_get_sized((out), sizeof *(out))
/* Print the statistics as a table (units scaled), one line per size class
 * in use. NULL means stderr. */
void keel_stats_print(FILE *out);

#ifdef __cplusplus
}
#endif
#endif /* KEEL_H */
