/* trees.c — the first-class heap workload: build and drop many JSON-like
 * object trees (objects with string keys, arrays, numbers, strings), either
 * with malloc/free per node ("malloc" mode, runs on any allocator through
 * LD_PRELOAD) or with one keel heap per tree dropped whole with
 * keel_heap_destroy ("heap" mode, needs keel). Each tree is checked (node
 * count and a checksum of its contents) before it is dropped.
 *   trees MODE TREES NODES */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "keel.h"

typedef struct node { int kind; char *key; char *str; double num; struct node **kids; int nkids; } node_t;
static keel_heap_t *heap;
static void *(*heap_malloc)(keel_heap_t *, size_t);
static void *get(size_t n) { return heap ? heap_malloc(heap, n) : malloc(n); }
static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }
static char *text(int len) {
  char *s = get((size_t)len + 1);
  for (int i = 0; i < len; i++) s[i] = (char)('a' + (next() % 26));
  s[len] = 0;
  return s;
}
static node_t *build(int *budget, int depth) {
  node_t *n = get(sizeof *n);
  memset(n, 0, sizeof *n);
  n->key = text(3 + (int)(next() % 12));
  (*budget)--;
  if (depth > 6 || *budget <= 0 || next() % 3 == 0) {
    if (next() % 2) { n->kind = 1; n->str = text(1 + (int)(next() % 40)); } else { n->kind = 2; n->num = (double)(next() % 100000); }
    return n;
  }
  n->kind = 3;
  int want = 1 + (int)(next() % 8);
  n->kids = get(sizeof(node_t *) * (size_t)want);
  for (int i = 0; i < want && *budget > 0; i++) n->kids[n->nkids++] = build(budget, depth + 1);
  return n;
}
static uint64_t sum(const node_t *n, long *count) {
  (*count)++;
  uint64_t h = strlen(n->key) * 31 + (uint64_t)n->kind;
  if (n->kind == 1) h += strlen(n->str);
  if (n->kind == 2) h += (uint64_t)n->num;
  for (int i = 0; i < n->nkids; i++) h = h * 7 + sum(n->kids[i], count);
  return h;
}
static void drop(node_t *n) {
  for (int i = 0; i < n->nkids; i++) drop(n->kids[i]);
  free(n->key); free(n->str); free(n->kids); free(n);
}
int main(int argc, char **argv) {
  if (argc < 4) { fprintf(stderr, "usage: trees malloc|heap TREES NODES\n"); return 2; }
  int use_heap = strcmp(argv[1], "heap") == 0;
  long trees = atol(argv[2]), nodes = atol(argv[3]), total = 0;
  keel_heap_t *(*hnew)(void) = NULL;
  void (*hdestroy)(keel_heap_t *) = NULL;
  if (use_heap) {   /* looked up at run time so malloc mode runs without keel */
    hnew = (keel_heap_t *(*)(void))dlsym(RTLD_DEFAULT, "keel_heap_new");
    hdestroy = (void (*)(keel_heap_t *))dlsym(RTLD_DEFAULT, "keel_heap_destroy");
    heap_malloc = (void *(*)(keel_heap_t *, size_t))dlsym(RTLD_DEFAULT, "keel_heap_malloc");
    if (!hnew || !hdestroy || !heap_malloc) { fprintf(stderr, "heap mode needs keel preloaded\n"); return 2; }
  }
  uint64_t check = 0;
  for (long t = 0; t < trees; t++) {
    if (use_heap) heap = hnew();
    int budget = (int)nodes;
    node_t *root = build(&budget, 0);
    long count = 0;
    check += sum(root, &count);
    total += count;
    if (count != nodes - budget) { fprintf(stderr, "tree %ld: %ld nodes, expected %ld\n", t, count, nodes - budget); return 3; }
    if (use_heap) { hdestroy(heap); heap = NULL; } else drop(root);
  }
  printf("ok %s trees=%ld nodes=%ld check=%llu\n", argv[1], trees, total, (unsigned long long)check);
  return 0;
}
