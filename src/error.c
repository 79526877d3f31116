/* error.c — every message keel prints starts with "keel: ". Messages are
 * formatted on the stack and written with one write(2): no stdio buffers, no
 * allocation, safe in the middle of a broken heap. */
#include <stdarg.h>
#include <stdio.h>
#include "internal/internal.h"

void kl_message(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  kl_prim_write_stderr(buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* A call with a pointer keel cannot accept. Default: report and abort,
 * because carrying on would corrupt memory. KEEL_ON_ERROR=warn reports and
 * returns; the caller then ignores the call. */
void kl_error_bad_pointer(const char *who, const void *p, const char *what) {
  bool warn = kl_option(KL_OPT_ON_ERROR_WARN) != 0;
  kl_message("keel: %s(): invalid pointer %p: %s%s\n", who, p, what,
             warn ? " (ignored: KEEL_ON_ERROR=warn)" : "");
  if (!warn) kl_prim_abort();
}

#if KL_SECURE
void kl_error_corrupt(const kl_page_t *page, const void *block) {
  kl_message("keel: heap corruption: the free-list link in block %p (page of %zu-byte blocks) was overwritten\n",
             block, page->block_size);
  kl_prim_abort();   /* never follow a forged link, whatever KEEL_ON_ERROR says */
}
#endif

#if KL_CHECKED
void kl_assert_fail(const char *expr, const char *file, int line) {
  kl_message("keel: internal assertion failed: %s (%s:%d)\n", expr, file, line);
  kl_prim_abort();
}
#endif
