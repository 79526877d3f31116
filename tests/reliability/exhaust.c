/* exhaust.c — running out of memory: keel must answer NULL (errno ENOMEM),
 * never abort or crash, keep every live block intact, recover what is
 * freed, and give address space back so that a large block fits again.
 *
 *   exhaust as MIB        limit the address space (RLIMIT_AS, what ulimit -v
 *                         sets) to what the process uses now + MIB
 *   exhaust inject        no limit; run in a KEEL_FAULT_INJECTION build with
 *                         KEEL_TEST_MMAP_FAIL=after:N or every:N set
 *
 * Steps: allocate 8 MiB blocks until NULL, then 256 KiB, 4 KiB and 64 B
 * blocks until NULL (each stage stops at its first NULL); verify every
 * block; free every other block and allocate again until NULL; verify; free
 * everything; then (in "as" mode) allocate and fill one 100 MiB block. In
 * "inject" mode with every:N, a NULL is a transient refusal: the program
 * keeps going for a fixed number of calls and only checks that nothing
 * crashed and no block was damaged. */
#include <errno.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <stdint.h>
#include "rel.h"
#include "../harness.h"

typedef struct { void *p; size_t size; } ent_t;
static ent_t *ents;
static size_t nents, cap;
static long bad;

/* Bytes of a block written and checked: all of a small one, the first 64
 * of a large one (the point is address space, not filling RAM). */
static size_t touched(size_t size) { return size <= 4096 ? size : 64; }

static long vm_kib(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0;
  if (f) { if (fscanf(f, "%ld", &pages) != 1) pages = 0; fclose(f); }
  return pages * 4;
}

/* Allocate blocks of `size` until NULL (or `limit` calls); returns count. */
static size_t fill_until_null(size_t size, size_t limit, int *saw_null) {
  size_t got = 0;
  *saw_null = 0;
  while (nents < cap && got < limit) {
    errno = 0;
    void *p = (got & 3) == 3 ? keel_calloc(1, size) : keel_malloc(size);
    if (!p) {
      if (errno != ENOMEM) { fprintf(stderr, "NULL with errno %d, not ENOMEM\n", errno); bad++; }
      *saw_null = 1;
      break;
    }
    rel_fill(p, touched(size), (uintptr_t)p);   /* touch a little of big blocks */
    ents[nents++] = (ent_t){ p, size };
    got++;
  }
  return got;
}
static void verify_all(const char *when) {
  for (size_t i = 0; i < nents; i++)
    if (ents[i].p && !rel_check(ents[i].p, touched(ents[i].size), (uintptr_t)ents[i].p)) {
      fprintf(stderr, "%s: block %zu damaged\n", when, i); bad++;
    }
}

int main(int argc, char **argv) {
  int as_mode = argc > 1 && strcmp(argv[1], "as") == 0;
  long mib = argc > 2 ? atol(argv[2]) : 512;
  cap = (size_t)mib * 1024 * 1024 / 64 + 1024;
  if (!as_mode) cap = 4u << 20;
  /* The bookkeeping array comes straight from the OS, before the limit. */
  ents = mmap(NULL, cap * sizeof *ents, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (ents == MAP_FAILED) { perror("mmap"); return 2; }
  void *warm = keel_malloc(1); keel_free(warm);        /* keel initialized first */
  printf("exhaust: start\n"); fflush(stdout);           /* stdio buffer allocated before the limit */
  if (as_mode) {
    struct rlimit rl = { 0, 0 };
    rl.rlim_cur = rl.rlim_max = (rlim_t)(vm_kib() + mib * 1024) * 1024;
    if (setrlimit(RLIMIT_AS, &rl)) { perror("setrlimit"); return 2; }
  }
  const char *inject = getenv("KEEL_TEST_MMAP_FAIL");
  int transient = !as_mode && inject && strncmp(inject, "every:", 6) == 0;
  size_t stage_limit = transient ? 20000 : (size_t)-1;

  static const size_t sizes[] = { 8u << 20, 256u << 10, 4096, 64 };
  size_t counts[4];
  int null_seen[4];
  for (int s = 0; s < 4; s++) counts[s] = fill_until_null(sizes[s], stage_limit, &null_seen[s]);
  printf("filled: %zu x 8 MiB, %zu x 256 KiB, %zu x 4 KiB, %zu x 64 B (VM %ld MiB)\n",
         counts[0], counts[1], counts[2], counts[3], vm_kib() / 1024);
  if (!transient) for (int s = 0; s < 4; s++) CHECKF(null_seen[s], "stage %d never got NULL", s);
  verify_all("after filling");

  /* Free every other block, then allocate again (small blocks first: they
   * must reuse the freed slots even when the OS gives nothing more). */
  size_t freed = 0, freed_small = 0;
  for (size_t i = 0; i < nents; i += 2) {
    keel_free(ents[i].p); ents[i].p = NULL; freed++;
    if (ents[i].size <= 4096) freed_small++;
  }
  size_t before = nents;
  size_t again_small = 0, again_big = 0;
  int dummy;
  for (size_t i = 0; i < before && nents < cap; i += 2) {   /* refill the holes by size */
    if (ents[i].size > 4096) continue;
    void *p = keel_malloc(ents[i].size);
    if (!p) break;
    rel_fill(p, touched(ents[i].size), (uintptr_t)p);
    ents[i].p = p; again_small++;
  }
  again_big = fill_until_null(256u << 10, stage_limit, &dummy);
  printf("freed %zu; allocated again: %zu small into the holes, %zu x 256 KiB\n", freed, again_small, again_big);
  CHECKF(again_small > 0 || transient || freed_small == 0, "no small block could be allocated after freeing %zu", freed_small);
  verify_all("after refilling");

  for (size_t i = 0; i < nents; i++) { keel_free(ents[i].p); ents[i].p = NULL; }
  if (as_mode) {
    /* All freed: the address space must be usable again for one big block. */
    size_t big = 100u << 20;
    unsigned char *p = keel_malloc(big);
    CHECKF(p != NULL, "100 MiB after freeing everything: NULL (errno %d); keel kept the address space", errno);
    if (p) {
      memset(p, 0xab, big);
      CHECK(p[0] == 0xab && p[big - 1] == 0xab);
      keel_free(p);
    }
    printf("100 MiB block after freeing everything: %s\n", p ? "ok" : "FAILED");
  } else {
    /* With injected failures the process must still work where memory is
     * already there: blocks from pages keel holds. */
    void *p = keel_malloc(100);
    printf("after injected failures: malloc(100) %s\n", p ? "ok" : "NULL");
    keel_free(p);
  }
  CHECKF(bad == 0, "%ld damaged blocks or wrong errno", bad);
  return KL_DONE();
}
