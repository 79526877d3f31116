/* Death test: freeing a pointer keel never handed out (or freeing twice)
 * must stop the program (wasm `unreachable`), never corrupt the heap.
 * Usage: badfree misaligned|twice|foreign */
#include <stdlib.h>
#include <string.h>

static char not_heap[64];

int main(int argc, char **argv) {
  char *p = malloc(32);
  const char *how = argc > 1 ? argv[1] : "twice";
  if (!strcmp(how, "misaligned")) free(p + 4);
  else if (!strcmp(how, "foreign")) free(not_heap + 16);
  else { free(p); free(p); }
  return 0;   /* reaching here is the failure */
}
