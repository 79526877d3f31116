/* fuzz_api.c — libFuzzer harness for keel's whole keel_* API.
 *
 * The input is a program: each operation is an opcode byte followed by its
 * operands (slot, sizes, alignment), all taken from the input. Operations
 * cover every family member (malloc, calloc, realloc, free, free_sized,
 * aligned_alloc, posix_memalign, usable_size, and the first-class heap
 * calls), in any order, and an operation can be sent to a second thread
 * (kept alive for the whole run, so blocks cross threads both ways).
 *
 * A shadow model (an array of live blocks) checks, after every step: the
 * contents of every block touched (a pattern written at allocation and
 * checked before free or realloc), alignment, usable size >= requested,
 * that no two live blocks overlap (over their full usable size), calloc
 * zeroing, realloc keeping the prefix, and errno/NULL on impossible
 * requests. Any violation aborts, which libFuzzer reports with the input.
 *
 * Built two ways:
 *  - with clang -fsanitize=fuzzer (tools/fuzz.sh), libFuzzer drives it;
 *  - with -DFUZZ_STANDALONE, main() replays the files named on the command
 *    line (the seed corpus, crash reproducers) with any compiler. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "keel.h"

#define SLOTS 64
#define MAX_BYTES ((size_t)16 << 20)   /* keep a run fast: at most 16 MiB live per block */

typedef struct {
  unsigned char *p;
  size_t size;          /* requested */
  size_t align;
  uint8_t seed;
  int heap;             /* -1 default heap, else index into heaps[] */
} slot_t;

static slot_t slots[SLOTS];
static bool trace;   /* FUZZ_TRACE=1 (standalone replays): one line per operation */
static keel_heap_t *heaps[2];   /* first-class heaps, owned by the main thread */

#define FAIL(...) do { fprintf(stderr, "fuzz_api: " __VA_ARGS__); fputc('\n', stderr); abort(); } while (0)

/* ---- the input as a stream ---- */
typedef struct { const uint8_t *d; size_t n, i; } in_t;
static uint8_t u8(in_t *in) { return in->i < in->n ? in->d[in->i++] : 0; }
static uint16_t u16(in_t *in) { uint16_t a = u8(in); return (uint16_t)(a | u8(in) << 8); }
/* Sizes: mostly small, sometimes medium or huge, rarely impossible. */
static size_t rd_size(in_t *in) {
  uint8_t k = u8(in);
  uint16_t v = u16(in);
  switch (k & 7) {
  case 0: case 1: case 2: return v & 0x3ff;            /* 0 .. 1 KiB */
  case 3: case 4: return v;                            /* .. 64 KiB */
  case 5: return (size_t)v << 4;                       /* .. 1 MiB */
  case 6: return ((size_t)v << 8) % MAX_BYTES;         /* .. 16 MiB */
  default:
    if ((k >> 3) == 31) return SIZE_MAX - v;           /* impossible */
    if ((k >> 3) == 30) return ((size_t)1 << 62) + v;  /* impossible too */
    return v & 0xff;
  }
}
static size_t rd_align(in_t *in) {
  uint8_t a = u8(in);
  if (a >= 0xf8) return (size_t)a;                     /* not a power of two (mostly) */
  return (size_t)1 << (a % 23);                        /* 1 B .. 4 MiB */
}
static bool impossible(size_t n) { return n > ((size_t)1 << 48); }

/* ---- shadow checks ---- */
static unsigned char pat(uint8_t seed, size_t i) { return (unsigned char)(seed + i * 131 + (i >> 9)); }
static size_t check_len(size_t n) { return n <= 8192 ? n : 8192; }   /* both ends of big blocks */
static void fill(slot_t *s) {
  size_t n = s->size, c = check_len(n);
  for (size_t i = 0; i < c; i++) s->p[i] = pat(s->seed, i);
  for (size_t i = n > c ? n - c : n; i < n; i++) s->p[i] = pat(s->seed, i);
}
static void verify(const slot_t *s, size_t upto) {
  size_t n = s->size < upto ? s->size : upto, c = check_len(n);
  for (size_t i = 0; i < c; i++) if (s->p[i] != pat(s->seed, i)) FAIL("block %p (%zu B) damaged at %zu", (void *)s->p, s->size, i);
  /* The tail was written relative to the old size; only check it if kept whole. */
  if (upto >= s->size) for (size_t i = n > c ? n - c : n; i < n; i++)
    if (s->p[i] != pat(s->seed, i)) FAIL("block %p (%zu B) damaged at %zu", (void *)s->p, s->size, i);
}
static void admit(slot_t *s, void *p, size_t size, size_t align, uint8_t seed, int heap) {
  if ((uintptr_t)p % 16) FAIL("%p not 16-byte aligned", p);
  if (align > 16 && (uintptr_t)p % align) FAIL("%p not aligned to %zu", p, align);
  size_t us = keel_usable_size(p);
  if (us < size) FAIL("usable size %zu < requested %zu", us, size);
  /* No overlap with any other live block, over full usable sizes. */
  uintptr_t a = (uintptr_t)p, b = a + (us ? us : 1);
  for (int i = 0; i < SLOTS; i++) {
    const slot_t *o = &slots[i];
    if (!o->p || o == s) continue;
    uintptr_t c = (uintptr_t)o->p, d = c + (keel_usable_size(o->p) ? keel_usable_size(o->p) : 1);
    if (a < d && c < b) FAIL("%p+%zu overlaps live %p+%zu", p, us, (void *)o->p, (size_t)(d - c));
  }
  /* The usable size is writable: touch its last byte (not part of the pattern). */
  if (us > size) ((volatile unsigned char *)p)[us - 1] = 0x55;
  s->p = p; s->size = size; s->align = align; s->seed = seed; s->heap = heap;
  if (trace) fprintf(stderr, "  -> %p (usable %zu) heap %d\n", p, us, heap);
  fill(s);
}
static void drop(slot_t *s) { memset(s, 0, sizeof *s); s->heap = -1; }

/* ---- the second thread: runs one operation at a time, synchronously, so a
 * run is deterministic while blocks still cross threads. ---- */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static void (*job)(void *);
static void *job_arg;
static bool job_done = true, job_quit;
static pthread_t helper_tid;
static bool helper_started;
static void *helper(void *unused) {
  (void)unused;
  pthread_mutex_lock(&mu);
  for (;;) {
    while (job_done) pthread_cond_wait(&cv, &mu);
    bool quit = job_quit;
    if (!quit) job(job_arg);
    job_done = true;
    pthread_cond_broadcast(&cv);
    if (quit) break;
  }
  pthread_mutex_unlock(&mu);
  return NULL;
}
static void post(void (*fn)(void *), void *arg, bool quit) {
  if (!helper_started) { helper_started = true; if (pthread_create(&helper_tid, NULL, helper, NULL)) FAIL("pthread_create"); }
  pthread_mutex_lock(&mu);
  job = fn; job_arg = arg; job_quit = quit; job_done = false;
  pthread_cond_broadcast(&cv);
  while (!job_done) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
}
static void on_helper(void (*fn)(void *), void *arg) { post(fn, arg, false); }
/* The helper exits (its heap is abandoned with its blocks still live in the
 * model) and a fresh one starts on the next remote operation. */
static void restart_helper(void) {
  if (!helper_started) return;
  if (trace) fprintf(stderr, "helper exits\n");
  post(NULL, NULL, true);
  pthread_join(helper_tid, NULL);
  helper_started = false;
}

/* ---- one operation ---- */
typedef struct { uint8_t op; slot_t *s; size_t n, m, align; uint8_t seed; int heap; } op_t;

static void run_op(void *arg) {
  op_t *o = arg;
  slot_t *s = o->s;
  void *p = NULL;
  if (trace) fprintf(stderr, "%s op %d slot %d (%p, %zu B, heap %d) n %zu m %zu align %zu heap %d\n",
                     helper_started && pthread_equal(pthread_self(), helper_tid) ? "helper" : "main", o->op, (int)(s - slots), (void *)s->p, s->size, s->heap, o->n, o->m, o->align, o->heap);
  switch (o->op) {
  case 0: case 1: case 2: case 3: case 4: case 5: case 6:   /* allocations into an empty slot */
    if (s->p) {           /* free what is there first, checking it */
      verify(s, SIZE_MAX);
      if (o->op & 1) keel_free_sized(s->p, s->size); else keel_free(s->p);
      drop(s);
    }
    errno = 0;
    if (o->op <= 1) p = keel_malloc(o->n);
    else if (o->op == 2) {
      size_t cnt = o->m & 0x7f;
      if (o->n > ((size_t)1 << 20) && !impossible(o->n)) cnt &= 3;   /* keep real requests under 64 MiB */
      p = keel_calloc(cnt, o->n);
      size_t total;
      if (__builtin_mul_overflow(cnt, o->n, &total) || impossible(total)) {
        if (p || errno != ENOMEM) FAIL("calloc(%zu, %zu) gave %p errno %d", cnt, o->n, p, errno);
        return;
      }
      if (p) for (size_t i = 0; i < check_len(total); i++) if (((unsigned char *)p)[i]) FAIL("calloc not zero at %zu", i);
      o->n = total;
    } else if (o->op == 3) {
      p = keel_aligned_alloc(o->align, o->n);
      bool pow2 = o->align && !(o->align & (o->align - 1));
      if (!pow2) { if (p || errno != EINVAL) FAIL("aligned_alloc(%zu) gave %p errno %d", o->align, p, errno); return; }
    } else if (o->op == 4) {
      void *q = (void *)1;
      int r = keel_posix_memalign(&q, o->align, o->n);
      bool ok_align = o->align >= sizeof(void *) && !(o->align & (o->align - 1));
      if (!ok_align) { if (r != EINVAL || q != (void *)1) FAIL("posix_memalign(%zu) = %d", o->align, r); return; }
      if (r) { if (r != ENOMEM || q != (void *)1) FAIL("posix_memalign failed with %d", r); if (!impossible(o->n)) FAIL("posix_memalign(%zu, %zu) ENOMEM", o->align, o->n); return; }
      p = q;
    } else if (o->heap >= 0 && heaps[o->heap]) {   /* 5, 6: a first-class heap (main thread only) */
      keel_heap_t *h = heaps[o->heap];
      if (o->op == 5) p = keel_heap_malloc(h, o->n);
      else p = keel_heap_aligned_alloc(h, o->align, o->n);
      if (o->op == 6 && (o->align == 0 || (o->align & (o->align - 1)))) { if (p) FAIL("heap aligned_alloc(%zu) gave %p", o->align, p); return; }
      if (p && !keel_heap_contains(h, p)) FAIL("heap does not contain its block %p", p);
    } else p = keel_malloc(o->n);
    if (!p) {
      if (!impossible(o->n)) FAIL("op %d: allocation of %zu (align %zu) failed, errno %d", o->op, o->n, o->align, errno);
      if (errno != ENOMEM) FAIL("op %d: NULL without ENOMEM (errno %d)", o->op, errno);
      return;
    }
    if (impossible(o->n)) FAIL("op %d: impossible size %zu served", o->op, o->n);
    bool in_heap = (o->op == 5 || o->op == 6) && o->heap >= 0 && heaps[o->heap];
    bool aligned = o->op == 3 || o->op == 4 || (o->op == 6 && in_heap);
    admit(s, p, o->n, aligned ? o->align : 16, o->seed, in_heap ? o->heap : -1);
    return;
  case 7: {                                          /* realloc, in any state */
    size_t old = s->size;
    if (s->p) verify(s, SIZE_MAX);
    errno = 0;
    bool in_heap = s->p && s->heap >= 0 && heaps[s->heap] && (o->m & 1);
    if (in_heap && o->n == 0) o->n = 1;           /* heap_realloc(p, 0) is not specified; keep to defined calls */
    p = in_heap ? keel_heap_realloc(heaps[s->heap], s->p, o->n) : keel_realloc(s->p, o->n);
    if (o->n == 0 && s->p) {                       /* glibc's rule, in keel.h: frees, returns NULL */
      if (p) FAIL("realloc(p, 0) returned %p, not NULL", p);
      drop(s);
      return;
    }
    if (!p) {
      if (!impossible(o->n)) FAIL("realloc to %zu failed", o->n);
      if (s->p) verify(s, SIZE_MAX);                /* the old block must be intact */
      return;
    }
    if (impossible(o->n)) FAIL("realloc to impossible %zu served", o->n);
    if (s->p) {
      slot_t tmp = *s; tmp.p = p;
      verify(&tmp, o->n);                           /* the kept prefix */
    }
    (void)old;
    /* A heap block resized in place stays in its heap; one that moved
     * went to the heap keel_heap_realloc names, or the default heap. */
    int home = in_heap ? s->heap : -1;
    if (!in_heap && s->p && s->heap >= 0 && heaps[s->heap] && keel_heap_contains(heaps[s->heap], p)) home = s->heap;
    admit(s, p, o->n, 16, o->seed, home);
    return;
  }
  case 8:                                            /* free */
    if (!s->p) { keel_free(NULL); return; }
    verify(s, SIZE_MAX);
    keel_free(s->p);
    drop(s);
    return;
  case 9:                                            /* usable size, verify */
    if (keel_usable_size(NULL) != 0) FAIL("usable_size(NULL)");
    if (s->p) { if (keel_usable_size(s->p) < s->size) FAIL("usable shrank"); verify(s, SIZE_MAX); }
    return;
  }
}

static void heap_op(uint8_t which, uint8_t kind) {
  int h = which & 1;
  if (trace) fprintf(stderr, "heap %d: %s\n", h, !heaps[h] ? "new" : kind & 1 ? "destroy" : "delete");
  if (!heaps[h]) { heaps[h] = keel_heap_new(); if (!heaps[h]) FAIL("keel_heap_new failed"); return; }
  if (kind & 1) {             /* destroy: every block of the heap is gone */
    for (int i = 0; i < SLOTS; i++) if (slots[i].p && slots[i].heap == h) { verify(&slots[i], SIZE_MAX); drop(&slots[i]); }
    keel_heap_destroy(heaps[h]);
  } else {                    /* delete: blocks live on in the default heap */
    for (int i = 0; i < SLOTS; i++) if (slots[i].p && slots[i].heap == h) slots[i].heap = -1;
    keel_heap_delete(heaps[h]);
  }
  heaps[h] = NULL;
}

/* keel_heap_visit must report exactly the model's blocks of that heap. */
static bool visit_one(void *block, size_t size, void *arg) {
  int *count = arg;
  int h = count[1];
  for (int i = 0; i < SLOTS; i++)
    if (slots[i].p == block) {
      if (slots[i].heap != h) FAIL("visit of heap %d saw %p of heap %d", h, block, slots[i].heap);
      if (size < slots[i].size) FAIL("visit size %zu < %zu", size, slots[i].size);
      count[0]++;
      return true;
    }
  FAIL("visit of heap %d saw %p, not a live block of it", h, block);
}
static void visit_check(int h) {
  if (!heaps[h]) return;
  int count[2] = { 0, h }, want = 0;
  if (!keel_heap_visit(heaps[h], visit_one, count)) FAIL("visit stopped");
  for (int i = 0; i < SLOTS; i++) if (slots[i].p && slots[i].heap == h) want++;
  if (count[0] != want) FAIL("visit saw %d blocks, the heap holds %d", count[0], want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  in_t in = { data, size, 0 };
  for (int i = 0; i < SLOTS; i++) slots[i].heap = -1;
  int steps = 0;
  while (in.i < in.n && steps++ < 4096) {
    uint8_t b = u8(&in);
    uint8_t op = b % 12;
    bool remote = b & 0x80;
    if (op == 10) { heap_op(u8(&in), u8(&in)); continue; }
    if (op == 11) {
      uint8_t k = u8(&in);
      if (k & 1) restart_helper();
      else visit_check(k >> 1 & 1);
      continue;
    }
    op_t o = { op, &slots[u8(&in) % SLOTS], 0, 0, 16, 0, -1 };
    o.n = rd_size(&in);
    o.m = u8(&in);
    if (op == 3 || op == 4 || op == 6) o.align = rd_align(&in);
    o.seed = u8(&in);
    o.heap = (o.m >> 1) & 1;
    /* Heap allocation (5, 6) belongs to the heap's thread: keep it on main. */
    if (remote && op != 5 && op != 6 && !(op == 7 && o.s->heap >= 0)) on_helper(run_op, &o);
    else run_op(&o);
  }
  /* Leave nothing behind: the next input starts from an empty model. */
  for (int i = 0; i < SLOTS; i++) if (slots[i].p) { verify(&slots[i], SIZE_MAX); keel_free(slots[i].p); drop(&slots[i]); }
  for (int h = 0; h < 2; h++) if (heaps[h]) { keel_heap_destroy(heaps[h]); heaps[h] = NULL; }
  return 0;
}

#ifdef FUZZ_STANDALONE
int main(int argc, char **argv) {
  int n = 0;
  trace = getenv("FUZZ_TRACE") != NULL;
  for (int a = 1; a < argc; a++) {
    FILE *f = fopen(argv[a], "rb");
    if (!f) { perror(argv[a]); return 2; }
    static uint8_t buf[1 << 20];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, len);
    n++;
  }
  printf("fuzz_api: replayed %d inputs\n", n);
  return 0;
}
#endif
