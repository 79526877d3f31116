/* who.c — says whether keel serves malloc in this process (and that the
 * keel_* API always does), to show what a memory checker replaces. */
#define KL_DIRECT
#include "keelapi.h"

int main(void) {
  void *p = malloc(24);
  printf("keel serves malloc: %d\n", kl_is_keel(p));
  free(p);
  void *k = keel_malloc(24);
  printf("keel_malloc block is keel: %d\n", kl_is_keel(k));
  keel_free(k);
  return 0;
}
