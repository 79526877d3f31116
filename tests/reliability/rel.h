/* rel.h — shared pieces of the reliability programs: a deterministic RNG, a
 * heavy-tailed size distribution, and block "cookies" (a header plus a fill
 * pattern) written at allocation and verified before free, so that any block
 * keel hands out twice, overlaps, moves without copying or scribbles on is
 * caught by the program that owns it.
 *
 * Only keel.h's API is used, so the same programs run against the release
 * library, the checked one and sanitizer builds of keel's sources (which
 * have no malloc override). */
#ifndef REL_H
#define REL_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "keel.h"

/* splitmix64: small, fast, and every thread's stream is fixed by its seed,
 * so a failure repeats with the same arguments. */
static inline uint64_t rel_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static inline size_t rel_below(uint64_t *s, size_t n) { return n ? (size_t)(rel_next(s) % n) : 0; }

/* Mostly small, some medium, a few up to `max_huge` (several MiB): the mix
 * real programs have, and the one that crosses every keel size regime
 * (direct table, class table, medium pages, huge segments). */
static inline size_t rel_size(uint64_t *s, size_t max_huge) {
  uint64_t r = rel_next(s) % 1000;
  if (r < 800) return 1 + rel_below(s, 256);
  if (r < 950) return 257 + rel_below(s, 16 * 1024 - 257);
  if (r < 995) return 16 * 1024 + rel_below(s, 240 * 1024);
  return 256 * 1024 + rel_below(s, max_huge > 256 * 1024 ? max_huge - 256 * 1024 : 1);
}

/* The cookie: the first 16 bytes hold the size and a tag derived from it and
 * a per-block seed; every other byte holds a byte of the tag's stream. Blocks
 * under 16 bytes hold only pattern bytes (verified the same way). Large
 * blocks are filled whole but verified on a stride (plus both ends) so that
 * multi-MiB blocks do not dominate the run time. */
typedef struct { uint64_t size, tag; } rel_hdr_t;
static inline uint64_t rel_tag(uint64_t size, uint64_t seed) {
  uint64_t s = size * 0x2545f4914f6cdd1dull ^ seed;
  return rel_next(&s);
}
static inline unsigned char rel_byte(uint64_t tag, size_t i) {
  return (unsigned char)((tag >> ((i & 7) * 8)) + i / 8);
}
static inline void rel_fill(void *p, size_t size, uint64_t seed) {
  unsigned char *b = p;
  uint64_t tag = rel_tag(size, seed);
  size_t i = 0;
  if (size >= sizeof(rel_hdr_t)) {
    rel_hdr_t h = { size, tag };
    memcpy(b, &h, sizeof h);
    i = sizeof h;
  }
  for (; i < size; i++) b[i] = rel_byte(tag, i);
}
/* Returns 1 if intact; on damage prints where and returns 0. `seed` must be
 * what rel_fill got, or 0 with `size` from the header (blocks >= 16 B). */
static inline int rel_check(const void *p, size_t size, uint64_t seed) {
  const unsigned char *b = p;
  uint64_t tag = rel_tag(size, seed);
  size_t i = 0;
  if (size >= sizeof(rel_hdr_t)) {
    rel_hdr_t h;
    memcpy(&h, b, sizeof h);
    if (h.size != size || h.tag != tag) {
      fprintf(stderr, "cookie damaged at %p: size %llu (want %zu) tag %llx (want %llx)\n",
              p, (unsigned long long)h.size, size, (unsigned long long)h.tag, (unsigned long long)tag);
      return 0;
    }
    i = sizeof h;
  }
  size_t step = size <= 64 * 1024 ? 1 : 61;   /* odd stride: touches every page */
  for (; i < size; i += step)
    if (b[i] != rel_byte(tag, i)) { fprintf(stderr, "block %p (%zu B) damaged at byte %zu\n", p, size, i); return 0; }
  if (size > sizeof(rel_hdr_t) && b[size - 1] != rel_byte(tag, size - 1)) {
    fprintf(stderr, "block %p (%zu B) damaged at its end\n", p, size);
    return 0;
  }
  return 1;
}

/* Resident set size in KiB from /proc/self/statm (0 if unavailable). */
static inline long rel_rss_kib(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, rss = 0;
  if (!f) return 0;
  if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
  fclose(f);
  return rss * 4;
}
#endif
