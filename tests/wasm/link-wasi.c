/* Link test for wasi-libc: a program using atexit and locales makes
 * wasi-libc reference __libc_malloc, __libc_calloc and __libc_free; with
 * libkeel-wasi.a on the link line it must link without duplicate symbols
 * and run, with keel serving those calls (checked through the heap walker
 * seeing a live heap). */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int keel_wasm_heap_check(void);
static int bye_called;
static void bye(void) { bye_called = 1; }

int main(void) {
  for (int i = 0; i < 40; i++) if (atexit(bye)) return 2;   /* past 32: libc allocates */
  locale_t l = newlocale(LC_ALL_MASK, "C.UTF-8", (locale_t)0);
  if (l) freelocale(l);
  setlocale(LC_ALL, "C.UTF-8");
  char *s = strdup("keel");
  int ok = s && strcmp(s, "keel") == 0 && keel_wasm_heap_check() == 0;
  free(s);
  printf("%d passed, %d failed\n", ok, !ok);
  return !ok;
}
