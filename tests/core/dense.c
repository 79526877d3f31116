/* dense.c — memory keel faults in ahead of the program (MADV_POPULATE_WRITE).
 *  0. small pages (src/page.c, populate_ahead): a fresh page of a class of
 *     1 KiB or more has its first 16 KiB resident once its first block is
 *     handed out; one of a smaller class only the 4 KiB its first blocks
 *     were carved from.
 * Huge blocks that a program writes whole are faulted in when they are
 * handed out; sparse ones, and calloc's, are not (src/segment.c,
 * huge_dense_vote and huge_populate).
 *  1. four blocks of 8 MiB written whole and freed teach keel that blocks
 *     are dense: the next fresh one (the pool emptied by malloc_trim) is
 *     resident as malloc returns it, 6 MiB and more before the program
 *     touches it; written and read back, every byte holds.
 *  2. a calloc of 8 MiB then is not faulted in (under 3 MiB resident: a
 *     2 MiB page where transparent huge pages are always on), and reads
 *     zero.
 *  3. then blocks touched on their first page only: the third one is no
 *     longer faulted in (under 3 MiB resident), nor any after it.
 * NO_POPULATE=1 (the secure build, or KEEL_POPULATE=0) checks that no
 * block is faulted in, and the contents. Links libkeel. */
#include <malloc.h>
#include <sys/mman.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "keel.h"
#include "../harness.h"

#define MiB ((size_t)1 << 20)
#define SIZE (8 * MiB)
/* Not faulted in: the header's page, or one 2 MiB page where transparent
 * huge pages are on for every mapping ("always"). */
#define SPARSE_KIB 3072

static void fill(uint8_t *p, size_t n, unsigned seed) { for (size_t i = 0; i < n; i += 256) p[i] = (uint8_t)(seed + i / 256 * 7); }
static bool same(const uint8_t *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i += 256) if (p[i] != (uint8_t)(seed + i / 256 * 7)) return false;
  return true;
}

/* A fresh huge block: the pool and cache emptied first. Returns it, and
 * how much resident memory grew while malloc (or calloc) ran. */
static uint8_t *fresh(bool zero, long *grew) {
  malloc_trim(0);
  long before = kl_t_rss_kib();
  uint8_t *p = zero ? calloc(1, SIZE) : malloc(SIZE);
  *grew = kl_t_rss_kib() - before;
  return p;
}

/* How many bytes of the first 16 KiB of p's 64 KiB page are resident. */
static size_t chunk_resident(const void *p) {
  unsigned char vec[4];
  uintptr_t c = (uintptr_t)p & ~(uintptr_t)0xffff;
  if (mincore((void *)c, 16 * 1024, vec) != 0) return 0;
  return (size_t)((vec[0] & 1) + (vec[1] & 1) + (vec[2] & 1) + (vec[3] & 1)) * 4096;
}

/* Transparent huge pages on for every mapping: residency is then 2 MiB
 * at a time, and part 0 has nothing to measure. */
static bool thp_always(void) {
  char buf[128] = "";
  FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (f != NULL) { if (fgets(buf, sizeof buf, f) == NULL) buf[0] = 0; fclose(f); }
  return strstr(buf, "[always]") != NULL;
}

int main(void) {
  bool populate = getenv("NO_POPULATE") == NULL;
  /* 0. Sizes no earlier call asked for, so their pages are fresh. The
   * first takes the segment's first page, which its header shortens. */
  uint8_t *first = malloc(3000), *big = malloc(4300), *small = malloc(200);
  size_t rb = chunk_resident(big), rs = chunk_resident(small);
  printf("0. a fresh page of the 4608-byte class: %zu KiB of its first 16 KiB resident; of the 224-byte class: %zu KiB\n",
         rb / 1024, rs / 1024);
  CHECKF(((uintptr_t)big & 0x3fffff) >= 0x10000 && ((uintptr_t)small & 0x3fffff) >= 0x10000,
         "a segment's first page: %p %p", (void *)big, (void *)small);
  if (thp_always()) printf("0. skipped: transparent huge pages are always on\n");
  else {
    if (populate) CHECKF(rb == 16 * 1024, "4608-byte class: %zu bytes resident", rb);
    else CHECKF(rb == 4096, "4608-byte class: %zu bytes resident", rb);   /* the block's first OS page: its link and mark */
    CHECKF(rs == 4096, "224-byte class: %zu bytes resident", rs);
  }
  memset(first, 0x22, 3000); memset(big, 0x33, 4300); memset(small, 0x44, 200);
  CHECK(first[2999] == 0x22 && big[4299] == 0x33 && small[199] == 0x44);
  free(first); free(big); free(small);
  /* 1. */
  uint8_t *b[4];
  for (int i = 0; i < 4; i++) { b[i] = malloc(SIZE); fill(b[i], SIZE, (unsigned)i); }
  int bad = 0;
  for (int i = 0; i < 4; i++) { if (!same(b[i], SIZE, (unsigned)i)) bad++; free(b[i]); }
  CHECK(bad == 0);
  long grew;
  uint8_t *p = fresh(false, &grew);
  printf("1. a fresh 8 MiB block after four dense ones: %ld KiB resident at once\n", grew);
  if (populate) CHECKF(grew >= 6 * 1024, "resident grew %ld KiB", grew);
  else CHECKF(grew < SPARSE_KIB, "resident grew %ld KiB", grew);
  fill(p, SIZE, 9);
  CHECK(same(p, SIZE, 9));
  free(p);
  /* 2. */
  uint8_t *z = fresh(true, &grew);
  printf("2. calloc of 8 MiB: %ld KiB resident at once\n", grew);
  CHECKF(grew < SPARSE_KIB, "resident grew %ld KiB", grew);
  bad = 0;
  for (size_t i = 0; i < SIZE; i += 4096) if (z[i] != 0) bad++;
  CHECK(bad == 0);
  free(z);
  /* 3. */
  for (int r = 1; r <= 5; r++) {
    uint8_t *s = fresh(false, &grew);
    printf("3. sparse block %d: %ld KiB resident at once\n", r, grew);
    if (r >= 3 || !populate) CHECKF(grew < SPARSE_KIB, "sparse block %d: resident grew %ld KiB", r, grew);
    fill(s, 4096, (unsigned)r);
    CHECK(same(s, 4096, (unsigned)r));
    free(s);
  }
  return KL_DONE();
}
