/* bins.c — size classes. Four classes per power of two above 128 bytes, so
 * internal waste is at most 25% (12.5% on average), and a fifth at 9/8 of
 * each power of two from 1 KiB to 4 KiB; every class is a multiple of 16,
 * which gives every block glibc's 16-byte alignment.
 *   0..7   16, 32, ..., 128            (step 16)
 *   8..19  160, 192, 224, 256, ... 1024  (step 2^(b-2) in [2^b, 2^(b+1)])
 *   20..34 1152, 1280, 1536, 1792, 2048, 2304, ... 8192  (the same, plus 9/8 * 2^b)
 *   35..50 10240, 12288, ... 131072    (step 2^(b-2) again)
 *   51     262144: one block per medium page (KL_LARGE_CLASS, types.h)
 * Why the 9/8 classes: "a power of two plus a header" is a common request
 * (sqlite's in-memory journal chunks are 1032 bytes, its page buffers 4104
 * and 4368), and the next quarter step wastes 17-25% of each such block.
 * sqlite :memory: (bench): peak RSS 40.5 -> 37.3 MB, time even (9
 * alternating runs); alloc-test, whose 16 B-64 KiB sizes now spread over
 * 3 more classes, 7.1 -> 7.2 MB at 2 threads, 12.0 -> 12.4 MB at 4
 * (mimalloc: 11.5, 19.8; 7 runs). Eight classes per doubling from 1 to
 * 8 KiB saved sqlite no more and cost alloc-test 7.6 MB at 2 threads. Not
 * below 1 KiB, where more classes would cost the fast path's direct table
 * and small programs a page each, nor above 8 KiB, where each class in
 * use holds a 256 KiB medium page.
 * kl_size_class (internal.h) is the inverse up to 128 KiB, branch-light and
 * table-free; kl_malloc_generic picks the large class itself. */
#include "internal/internal.h"

#define C4(b) ((1u << (b)) + (1u << ((b) - 2))), ((1u << (b)) + (2u << ((b) - 2))), \
              ((1u << (b)) + (3u << ((b) - 2))), (1u << ((b) + 1))
#define C5(b) ((1u << (b)) + (1u << ((b) - 3))), C4(b)
const uint32_t kl_class_size[KL_CLASS_COUNT] = {
  16, 32, 48, 64, 80, 96, 112, 128,
  C4(7), C4(8), C4(9), C5(10), C5(11), C5(12), C4(13), C4(14), C4(15), C4(16), 262144
};
_Static_assert(KL_CLASS_COUNT == 8 + 3 * 4 + 3 * 5 + 4 * 4 + 1, "class table size");

/* kl_size_class(16 * i) for the direct sizes (i = (size + 15) >> 4; 0 is
 * malloc(0), served by class 0): one load where the fast path's miss needs
 * a class (kl_malloc_foreign). The checked build compares it with
 * kl_size_class at start-up. A constant on purpose: a thread's first
 * malloc reads it before the process is initialized, and a table filled
 * by kl_process_init races with that read (ThreadSanitizer reports it). */
const uint8_t kl_direct_class[KL_DIRECT_COUNT] = {
  0, 0, 1, 2, 3, 4, 5, 6, 7,                  /* 0..128: step 16 */
  8, 8, 9, 9, 10, 10, 11, 11,                 /* 144..256: 160 192 224 256 */
  12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15, 15,   /* ..512 */
  16, 16, 16, 16, 16, 16, 16, 16, 17, 17, 17, 17, 17, 17, 17, 17,   /* ..768 */
  18, 18, 18, 18, 18, 18, 18, 18, 19, 19, 19, 19, 19, 19, 19, 19    /* ..1024 */
};

bool kl_class_tables_ok(void) {
  for (unsigned i = 0; i < KL_DIRECT_COUNT; i++)
    if (kl_direct_class[i] != kl_size_class(i ? 16 * (size_t)i : 1)) return false;
  /* And kl_size_class inverts the table: each class's first and last
   * size map to it. */
  for (unsigned c = 0; c < KL_LARGE_CLASS; c++)
    if (kl_size_class(c ? kl_class_size[c - 1] + 1 : 1) != c || kl_size_class(kl_class_size[c]) != c) return false;
  return true;
}

/* The smallest class that holds `size` bytes and whose block size is a
 * multiple of `align` (a power of two <= KL_ALIGNED_CLASS_MAX): blocks of such
 * a class start on `align` boundaries because every page area starts on a
 * 4 KiB boundary. Returns KL_CLASS_COUNT when no class fits. */
unsigned kl_aligned_class(size_t size, size_t align) {
  if (size < align) size = align;
  if (size > KL_MEDIUM_MAX) return KL_CLASS_COUNT;
  for (unsigned c = kl_size_class(size); c < KL_CLASS_COUNT; c++) {
    if ((kl_class_size[c] & (align - 1)) == 0) return c;
  }
  return KL_CLASS_COUNT;
}
