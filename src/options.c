/* options.c — KEEL_* runtime options, read once from the environment
 * (through the platform layer, without allocating). A bad value is reported
 * with the variable's name and the default that stays in force; it never
 * stops the program. The README lists every option. Not here, because they
 * are not numbers a program would set: KEEL_REPORT (a file name) and
 * KEEL_REPORT_PID (report.c), and the test builds' KEEL_TEST_MMAP_FAIL
 * (prim/unix.c). */
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include "internal/internal.h"
#include "keel.h"

typedef struct { const char *name; long def; long min, max; bool is_bool; const char *words[2]; } desc_t;

static const desc_t descs[KL_OPT_COUNT] = {
  [KL_OPT_ON_ERROR_WARN] = { "KEEL_ON_ERROR", 0, 0, 1, false, { "abort", "warn" } },
  [KL_OPT_VERBOSE]       = { "KEEL_VERBOSE", 0, 0, 1, true, { 0, 0 } },
  [KL_OPT_SHOW_STATS]    = { "KEEL_SHOW_STATS", 0, 0, 1, true, { 0, 0 } },
  [KL_OPT_PURGE_DELAY]   = { "KEEL_PURGE_DELAY", 10, 0, 3600 * 1000, false, { 0, 0 } },
  [KL_OPT_HUGE_PAGES]    = { "KEEL_HUGE_PAGES", 0, 0, 1, true, { 0, 0 } },
  [KL_OPT_PURGE_THREAD]  = { "KEEL_PURGE_THREAD", 1, 0, 1, true, { 0, 0 } },
  [KL_OPT_REPORT_INTERVAL] = { "KEEL_REPORT_INTERVAL", 5, 1, 60 * 1000, false, { 0, 0 } },
  [KL_OPT_POPULATE]      = { "KEEL_POPULATE", 1, 0, 1, true, { 0, 0 } },
};

static long values[KL_OPT_COUNT];
static bool explicit_set[KL_OPT_COUNT];   /* set through keel_option_set: the environment yields */
static _Atomic(int) inited;   /* 0 no, 1 yes; racing readers parse twice, harmlessly */

static bool parse(const desc_t *d, const char *s, long *out) {
  if (d->words[0]) {
    for (long i = 0; i < 2; i++) if (strcmp(s, d->words[i]) == 0) { *out = i; return true; }
    return false;
  }
  if (d->is_bool) {
    static const char *yes[] = { "1", "true", "yes", "on" }, *no[] = { "0", "false", "no", "off" };
    for (int i = 0; i < 4; i++) {
      if (strcasecmp(s, yes[i]) == 0) { *out = 1; return true; }
      if (strcasecmp(s, no[i]) == 0) { *out = 0; return true; }
    }
    return false;
  }
  char *end;
  long v = strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < d->min || v > d->max) return false;
  *out = v;
  return true;
}

void kl_options_init(void) {
  if (kl_load_acquire(&inited)) return;
  for (int i = 0; i < KL_OPT_COUNT; i++) {
    const desc_t *d = &descs[i];
    if (explicit_set[i]) continue;
    values[i] = d->def;
    const char *s = kl_prim_getenv(d->name);
    if (s == NULL) continue;
    long v;   /* an empty value is not valid either: parse rejects it, and it is reported */
    if (parse(d, s, &v)) values[i] = v;
    else if (d->words[0])
      kl_message("keel: %s=%s is not valid (use %s or %s); keeping the default %s\n",
                 d->name, s, d->words[0], d->words[1], d->words[d->def]);
    else if (d->is_bool)
      kl_message("keel: %s=%s is not valid (use 0 or 1); keeping the default %ld\n", d->name, s, d->def);
    else
      kl_message("keel: %s=%s is not valid (use a whole number of milliseconds from %ld to %ld); keeping the default %ld\n",
                 d->name, s, d->min, d->max, d->def);
  }
  /* Release: readers that see inited see the values. */
  kl_store_release(&inited, 1);
}

long kl_option(kl_option_t opt) {
  if (kl_unlikely(!kl_load_acquire(&inited))) kl_options_init();
  return values[opt];
}

_Static_assert((int)KEEL_OPTION_ON_ERROR == KL_OPT_ON_ERROR_WARN && (int)KEEL_OPTION_VERBOSE == KL_OPT_VERBOSE &&
               (int)KEEL_OPTION_SHOW_STATS == KL_OPT_SHOW_STATS && (int)KEEL_OPTION_PURGE_DELAY == KL_OPT_PURGE_DELAY &&
               (int)KEEL_OPTION_HUGE_PAGES == KL_OPT_HUGE_PAGES && (int)KEEL_OPTION_PURGE_THREAD == KL_OPT_PURGE_THREAD &&
               (int)KEEL_OPTION_REPORT_INTERVAL == KL_OPT_REPORT_INTERVAL && (int)KEEL_OPTION_POPULATE == KL_OPT_POPULATE,
               "public and internal option numbers agree");

kl_public int keel_option_set(keel_option_t option, long value) {
  if ((unsigned)option >= KL_OPT_COUNT) return EINVAL;
  const desc_t *d = &descs[option];
  if (value < d->min || value > d->max) return EINVAL;
  values[option] = value;
  explicit_set[option] = true;
  return 0;
}

kl_public long keel_option_get(keel_option_t option) {
  if ((unsigned)option >= KL_OPT_COUNT) return -1;
  return kl_option((kl_option_t)option);
}
