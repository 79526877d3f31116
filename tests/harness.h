/* Minimal test harness: CHECK(cond) counts, main ends with KL_DONE(). */
#ifndef KL_HARNESS_H
#define KL_HARNESS_H
#include <stdio.h>
static int kl_t_pass, kl_t_fail;
#define CHECK(cond) do { if (cond) kl_t_pass++; else { kl_t_fail++; \
  fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECKF(cond, ...) do { if (cond) kl_t_pass++; else { kl_t_fail++; \
  fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
  fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)
#define KL_DONE() (printf("%d passed, %d failed\n", kl_t_pass, kl_t_fail), kl_t_fail != 0)
#endif
