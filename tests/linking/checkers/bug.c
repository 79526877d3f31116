/* bug.c — a program with three heap bugs (a one-byte overflow, a read after
 * free, a leak), used to show that a memory checker run as docs/CHECKERS.md
 * says still finds them when the program is linked against keel. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  char *volatile p = malloc(16);
  p[16] = 'x';                   /* heap-buffer-overflow by one */
  char *volatile q = malloc(32);
  q[3] = 1;
  free(q);
  int r = q[3];                  /* read after free */
  char *volatile leak = malloc(100);
  leak[0] = 1;                   /* never freed */
  free(p);
  printf("done %d\n", r & 0);
  return 0;
}
