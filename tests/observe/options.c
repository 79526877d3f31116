/* options.c — the options in force, for the observe suite's checks of bad
 * environment values: prints NAME=VALUE for every option (keel_option_get).
 * With the argument "huge" it asks for 8 GiB instead and prints "NULL
 * ENOMEM" or "got" (the suite runs it under `ulimit -v`, with and without
 * KEEL_VERBOSE). Links libkeel. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "keel.h"

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "huge") == 0) {
    errno = 0;
    void *p = malloc((size_t)8 << 30);
    int e = errno;
    printf("%s\n", p != NULL ? "got" : e == ENOMEM ? "NULL ENOMEM" : "NULL, errno not ENOMEM");
    free(p);
    return 0;
  }
  static const char *names[] = { "KEEL_ON_ERROR", "KEEL_VERBOSE", "KEEL_SHOW_STATS", "KEEL_PURGE_DELAY",
                                 "KEEL_HUGE_PAGES", "KEEL_PURGE_THREAD", "KEEL_REPORT_INTERVAL", "KEEL_POPULATE" };
  for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
    printf("%s=%ld\n", names[i], keel_option_get((keel_option_t)i));
  return 0;
}
