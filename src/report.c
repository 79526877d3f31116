/* report.c — `keel --report FILE`: a self-contained HTML report with inline
 * SVG charts of one process's memory over time.
 *
 * When KEEL_REPORT names a file, the first thread to initialize starts a
 * detached sampler thread (at a safe point: its own heap is ready, so the
 * thread's creation may allocate). Every KEEL_REPORT_INTERVAL ms (default 5;
 * an option of options.c, so a bad value is reported there and
 * keel_option_set changes it while sampling runs) it records resident memory, committed memory and bytes in use into a
 * fixed array; when the array fills, every other sample is dropped and the
 * interval doubles, so any run length fits in a bounded buffer. The size
 * class histogram is copied whenever bytes in use reach a new peak. At exit
 * a destructor writes the HTML. A forked child restarts sampling and writes
 * its own file, FILE with ".PID" before the extension; so does every process
 * other than the one whose pid KEEL_REPORT_PID names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal/internal.h"
#include "keel.h"

#define MAX_SAMPLES 2048
typedef struct { uint32_t ms; size_t rss, committed, in_use; } sample_t;

static struct {
  _Atomic(int) active;          /* 1 while this process samples */
  _Atomic(int) generation;      /* bumped on fork: an old sampler stops */
  const char *path;
  long pid;
  uint64_t start_ms;
  unsigned halvings;             /* times the buffer was halved: the interval doubles each time */
  _Atomic(unsigned) count;      /* samples recorded (writer: sampler only) */
  sample_t s[MAX_SAMPLES];
  size_t peak_in_use, peak_rss;
  uint32_t peak_ms;
  keel_class_stats_t peak_classes[KEEL_STATS_CLASSES_ALL];
} R;

static keel_stats_t scratch;     /* the sampler's own: keeps its stack small */

static unsigned interval_ms(void) {
  /* The option is at most 60000 and halvings at most 24: no overflow. */
  uint64_t ms = (uint64_t)kl_option(KL_OPT_REPORT_INTERVAL) << R.halvings;
  return ms > 3600 * 1000 ? 3600 * 1000 : (unsigned)ms;
}

static void take_sample(void) {
  keel_stats_get(&scratch);
  unsigned n = kl_load_relaxed(&R.count);
  if (n == MAX_SAMPLES) {       /* halve the resolution, keep the whole run */
    for (unsigned i = 0; i < MAX_SAMPLES / 2; i++) R.s[i] = R.s[2 * i];
    n = MAX_SAMPLES / 2;
    if (R.halvings < 24) R.halvings++;
  }
  sample_t *x = &R.s[n];
  x->ms = (uint32_t)(kl_prim_clock_ms() - R.start_ms);
  x->rss = kl_prim_rss();
  x->committed = scratch.committed_bytes;
  x->in_use = scratch.in_use_bytes;
  if (x->rss > R.peak_rss) R.peak_rss = x->rss;
  if (x->in_use >= R.peak_in_use) {
    R.peak_in_use = x->in_use;
    R.peak_ms = x->ms;
    for (unsigned i = 0; i < KEEL_STATS_CLASSES_ALL; i++) R.peak_classes[i] = *KEEL_STATS_CLASS(&scratch, i);
  }
  /* Release: the exit writer reads samples below the count it sees. */
  kl_store_release(&R.count, n + 1);
}

static void *sampler(void *arg) {
  int gen = (int)(intptr_t)arg;
  while (kl_load_acquire(&R.active) && kl_load_relaxed(&R.generation) == gen) {
    take_sample();
    kl_prim_sleep_ms(interval_ms());
  }
  return NULL;
}

static void begin(void) {
  R.pid = kl_prim_pid();
  R.start_ms = kl_prim_clock_ms();
  R.halvings = 0;
  kl_store_relaxed(&R.count, 0);
  R.peak_in_use = R.peak_rss = 0;
  kl_store_release(&R.active, 1);
  if (!kl_prim_thread_start(sampler, (void *)(intptr_t)kl_load_relaxed(&R.generation)))
    kl_message("keel: could not start the report sampler; the report will have one sample\n");
}

static void after_fork_child(void) {
  if (!kl_load_relaxed(&R.active)) return;
  atomic_fetch_add_explicit(&R.generation, 1, memory_order_relaxed);
  begin();
}

void kl_report_start(void) {
  static _Atomic(int) started;
  int expect = 0;
  if (!atomic_compare_exchange_strong_explicit(&started, &expect, 1, memory_order_relaxed, memory_order_relaxed)) return;
  R.path = kl_prim_getenv("KEEL_REPORT");
  if (R.path == NULL || *R.path == '\0') return;
  kl_prim_atfork_child(after_fork_child);
  begin();
}

/* ---- the HTML ------------------------------------------------------------ */

static double mib(size_t b) { return (double)b / (1024.0 * 1024.0); }

static void line_chart(FILE *f, unsigned n) {
  const int W = 760, H = 280, L = 60, B = 30, T = 20;
  size_t ymax = 1;
  uint32_t tmax = 1;
  for (unsigned i = 0; i < n; i++) {
    if (R.s[i].rss > ymax) ymax = R.s[i].rss;
    if (R.s[i].committed > ymax) ymax = R.s[i].committed;
    if (R.s[i].in_use > ymax) ymax = R.s[i].in_use;
    if (R.s[i].ms > tmax) tmax = R.s[i].ms;
  }
  fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"11\">\n", W + 20, H + T + B);
  fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W + 20, H + T + B);
  for (int g = 0; g <= 4; g++) {
    int y = T + H - g * H / 4;
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#ddd\"/>", L, y, W, y);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.1f MiB</text>\n", L - 4, y + 4, mib(ymax) * g / 4);
  }
  fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">time (ms), 0 to %u</text>\n", (L + W) / 2, T + H + 22, tmax);
  static const struct { const char *name, *color; int which; } series[] = {
    { "resident (RSS)", "#1f77b4", 0 }, { "committed by keel", "#ff7f0e", 1 }, { "bytes in use", "#2ca02c", 2 } };
  for (int k = 0; k < 3; k++) {
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", series[k].color);
    for (unsigned i = 0; i < n; i++) {
      size_t v = k == 0 ? R.s[i].rss : k == 1 ? R.s[i].committed : R.s[i].in_use;
      fprintf(f, "%.1f,%.1f ", L + (double)(W - L) * R.s[i].ms / tmax, T + H - (double)H * v / ymax);
    }
    fprintf(f, "\"/>\n<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"4\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">%s</text>\n",
            L + 10 + k * 170, 8, series[k].color, L + 26 + k * 170, 13, series[k].name);
  }
  double px = L + (double)(W - L) * R.peak_ms / tmax;
  fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#d62728\" stroke-dasharray=\"4 3\"/>"
             "<text x=\"%.1f\" y=\"%d\" fill=\"#d62728\">peak in use</text>\n</svg>\n", px, T, px, T + H, px + 3, T + 12);
}

static void class_chart(FILE *f) {
  size_t bmax = 1, n = 0;
  for (int i = 0; i < KEEL_STATS_CLASSES_ALL; i++) {
    size_t b = R.peak_classes[i].blocks_in_use * R.peak_classes[i].block_size;
    if (b > bmax) bmax = b;
    if (R.peak_classes[i].blocks_in_use) n++;
  }
  const int row = 16, W = 760, L = 90;
  int H = (int)(n ? n : 1) * row + 10;
  fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"11\">\n"
             "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H, W, H);
  int y = 4;
  for (int i = 0; i < KEEL_STATS_CLASSES_ALL; i++) {
    const keel_class_stats_t *c = &R.peak_classes[i];
    if (!c->blocks_in_use) continue;
    size_t b = c->blocks_in_use * c->block_size;
    double w = (double)(W - L - 160) * b / bmax;
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%zu B</text><rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"#9467bd\"/>"
               "<text x=\"%.1f\" y=\"%d\">%zu blocks, %.2f MiB</text>\n",
            L - 6, y + 11, c->block_size, L, y, w < 1 ? 1 : w, row - 4, L + w + 6, y + 11, c->blocks_in_use, mib(b));
    y += row;
  }
  fprintf(f, "</svg>\n");
}

static void write_report(void) {
  if (!kl_load_acquire(&R.active)) return;
  kl_store_release(&R.active, 0);       /* the sampler stops at its next wake-up */
  take_sample();                        /* the final state */
  unsigned n = kl_load_acquire(&R.count);
  char path[4096];
  const char *want = kl_prim_getenv("KEEL_REPORT_PID");
  if (want != NULL && atol(want) == R.pid) snprintf(path, sizeof path, "%s", R.path);
  else {
    const char *dot = strrchr(R.path, '.'), *slash = strrchr(R.path, '/');
    if (dot && (!slash || dot > slash))
      snprintf(path, sizeof path, "%.*s.%ld%s", (int)(dot - R.path), R.path, R.pid, dot);
    else snprintf(path, sizeof path, "%s.%ld", R.path, R.pid);
  }
  FILE *f = fopen(path, "w");
  if (f == NULL) { kl_message("keel: cannot write the report to %s\n", path); return; }
  keel_stats_get(&scratch);
  const sample_t *last = &R.s[n - 1];
  bool grows = n >= 8 && R.s[n - 1].in_use > R.s[n / 2].in_use + R.s[n / 2].in_use / 10;
  fprintf(f, "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\"><head><meta charset=\"utf-8\"/>"
             "<title>keel report, pid %ld</title>\n<style>body{font-family:sans-serif;margin:20px;color:#222}"
             "table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}"
             "th{text-align:left}</style></head><body>\n", R.pid);
  fprintf(f, "<h1>keel memory report</h1>\n<p>Process %ld, %u ms, %u samples every %u ms or less. "
             "Peak bytes in use %.2f MiB at %u ms; peak resident %.2f MiB. %s</p>\n",
          R.pid, last->ms, n, interval_ms(), mib(R.peak_in_use), R.peak_ms, mib(R.peak_rss),
          grows ? "Bytes in use grew over the second half of the run." : "Bytes in use did not grow over the second half of the run.");
  fprintf(f, "<h2>Memory over time</h2>\n");
  line_chart(f, n);
  fprintf(f, "<h2>Size classes at the peak (bytes in use per class)</h2>\n");
  class_chart(f);
  fprintf(f, "<h2>Totals</h2>\n<table>\n");
#define ROW(name, fmt, v) fprintf(f, "<tr><th>%s</th><td>" fmt "</td></tr>\n", name, v)
  ROW("bytes in use at exit (MiB)", "%.2f", mib(scratch.in_use_bytes));
  ROW("peak bytes in use (MiB)", "%.2f", mib(scratch.in_use_bytes_peak));
  ROW("committed at exit (MiB)", "%.2f", mib(scratch.committed_bytes));
  ROW("peak committed (MiB)", "%.2f", mib(scratch.committed_bytes_peak));
  ROW("allocated in total (MiB)", "%.2f", mib(scratch.allocated_bytes_total));
  ROW("malloc calls", "%zu", scratch.calls_malloc);
  ROW("calloc calls", "%zu", scratch.calls_calloc);
  ROW("realloc calls", "%zu", scratch.calls_realloc);
  ROW("reallocarray calls", "%zu", scratch.calls_reallocarray);
  ROW("aligned_alloc calls", "%zu", scratch.calls_aligned_alloc);
  ROW("posix_memalign calls", "%zu", scratch.calls_posix_memalign);
  ROW("memalign calls", "%zu", scratch.calls_memalign);
  ROW("valloc calls", "%zu", scratch.calls_valloc);
  ROW("pvalloc calls", "%zu", scratch.calls_pvalloc);
  ROW("malloc_usable_size calls", "%zu", scratch.calls_usable_size);
  ROW("free calls", "%zu", scratch.calls_free);
  ROW("free_sized calls", "%zu", scratch.calls_free_sized);
  ROW("threads", "%zu", scratch.threads_seen);
  ROW("segments abandoned by exiting threads", "%zu", scratch.segments_abandoned);
  ROW("segments reclaimed by live threads", "%zu", scratch.segments_reclaimed);
  ROW("pages purged", "%zu", scratch.pages_purged);
  ROW("4 KiB holes purged in pages in use", "%zu", scratch.holes_purged);
  ROW("OS calls", "%zu", scratch.os_calls);
#undef ROW
  fprintf(f, "</table>\n</body></html>\n");
  fclose(f);
}

__attribute__((destructor)) static void report_at_exit(void) { write_report(); }
