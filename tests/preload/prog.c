/* A C file for the preload test: gcc compiles it on glibc's malloc and on
 * keel's, and the two objects must be identical. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
struct node { struct node *left, *right; int key; char name[24]; };
static struct node *insert(struct node *t, int key) {
  if (!t) { t = calloc(1, sizeof *t); t->key = key; snprintf(t->name, sizeof t->name, "n%d", key); return t; }
  if (key < t->key) t->left = insert(t->left, key); else t->right = insert(t->right, key);
  return t;
}
static int depth(const struct node *t) { if (!t) return 0; int l = depth(t->left), r = depth(t->right); return 1 + (l > r ? l : r); }
int main(void) {
  struct node *t = NULL;
  for (int i = 0; i < 1000; i++) t = insert(t, (i * 7919) % 1009);
  printf("%d\n", depth(t));
  return 0;
}
