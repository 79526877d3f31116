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

#ifdef __cplusplus
}
#endif
#endif /* KEEL_H */
