/* emscripten link test: with -sMALLOC=none and libkeel-emscripten.a alone
 * the program links (environ's emscripten_builtin_malloc, sbrk are keel's)
 * and runs. It also moves the break with sbrk between allocations, so keel
 * must notice memory it did not grow and start a new region there without
 * handing out the sbrk'd bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "harness.h"

int keel_wasm_heap_check(void);

int main(void) {
  setenv("KEEL_WASM", "1", 1);
  CHECK(getenv("KEEL_WASM") && strcmp(getenv("KEEL_WASM"), "1") == 0);
  char *a = malloc(1000);
  CHECK(a != NULL);
  char *brk0 = sbrk(0);
  char *got = sbrk(100000);
  CHECK(got == brk0);
  if (got != (char *)-1) memset(got, 0x77, 100000);
  /* Enough to make keel grow memory again, past the sbrk'd pages. */
  enum { N = 40 };
  char *big[N];
  int outside = 1;
  for (int i = 0; i < N; i++) {
    big[i] = malloc(1 << 20);
    CHECK(big[i] != NULL);
    if (!big[i]) continue;
    if (big[i] + (1 << 20) > got && big[i] < got + 100000) outside = 0;
    memset(big[i], i, 1 << 20);
  }
  CHECK(outside);
  int intact = 1;
  for (int i = 0; i < 100000; i++) intact &= got[i] == 0x77;
  CHECK(intact);
  for (int i = 0; i < N; i++) free(big[i]);
  free(a);
  CHECK(keel_wasm_heap_check() == 0);
  return KL_DONE();
}
