/* prim/unix.c — keel's only door to the OS on Linux and other Unixes:
 * mmap/munmap/madvise/mremap, the environment, stderr, the clock and the
 * thread-exit hook. See src/internal/prim.h for the contract.
 *
 * Nothing here calls malloc: the environment is read straight from
 * `environ`, messages go out with write(2), and pthread_key_create /
 * pthread_setspecific use storage inside the thread descriptor for the first
 * keys (no allocation in glibc). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include "../internal/internal.h"

extern char **environ;
static size_t os_page = 4096;
/* Valgrind's mremap loses track of the part a moving mremap grows (memcheck
 * then reports every write to it), so under valgrind kl_prim_move only
 * moves and the reservation's tail stays a mapping of its own. */
static bool under_valgrind;

void kl_prim_init(kl_prim_info_t *info) {
  long ps = sysconf(_SC_PAGESIZE);
  if (ps > 0) os_page = (size_t)ps;
  const char *pre = kl_prim_getenv("LD_PRELOAD");
  under_valgrind = pre != NULL && strstr(pre, "/vgpreload_") != NULL;
  info->page_size = os_page;
#ifdef MREMAP_MAYMOVE
  info->has_remap = true;
#else
  info->has_remap = false;
#endif
  info->has_overcommit = true;
}

size_t kl_prim_page_size(void) { return os_page; }

#if KL_FAULT_INJECTION
/* Test builds only: KEEL_TEST_MMAP_FAIL=after:N refuses every mapping after
 * the first N; every:N refuses every Nth. Read once, without allocating. */
static bool inject_failure(void) {
  static _Atomic(long) calls;
  static long mode = -1, n;   /* -1 unread, 0 off, 1 after, 2 every */
  if (mode < 0) {
    const char *s = kl_prim_getenv("KEEL_TEST_MMAP_FAIL");
    mode = 0;
    if (s && strncmp(s, "after:", 6) == 0) { mode = 1; n = strtol(s + 6, NULL, 10); }
    else if (s && strncmp(s, "every:", 6) == 0) { mode = 2; n = strtol(s + 6, NULL, 10); if (n < 1) mode = 0; }
  }
  if (mode == 0) return false;
  long c = atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed) + 1;
  return mode == 1 ? c > n : c % n == 0;
}
#else
static inline bool inject_failure(void) { return false; }
#endif

static void *map(void *hint, size_t size) {
  if (inject_failure()) { errno = ENOMEM; return NULL; }
  void *p = mmap(hint, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

static void *alloc_aligned(size_t size, size_t align, size_t offset, void *hint) {
  /* Over-map by `align`, then trim both ends: one mmap and up to two munmaps,
   * and the result never depends on where the kernel put earlier maps. */
  size_t total;
  if (kl_add_overflow(size, align, &total)) return NULL;
  uint8_t *raw = map(hint, total);
  if (raw == NULL) return NULL;
  uintptr_t a = kl_align_up((uintptr_t)raw + offset, align) - offset;
  if (a < (uintptr_t)raw) a += align;
  size_t head = a - (uintptr_t)raw;
  size_t tail = total - head - size;
  if (head) munmap(raw, head);
  if (tail) munmap((uint8_t *)a + size, tail);
  return (void *)a;
}

void *kl_prim_alloc_aligned(size_t size, size_t align, size_t offset) {
  return alloc_aligned(size, align, offset, NULL);
}

void *kl_prim_alloc_aligned_hint(size_t size, size_t align, void *hint) {
  return alloc_aligned(size, align, 0, hint);
}

bool kl_prim_hugepage(void *addr, size_t size) {
#ifdef MADV_HUGEPAGE
  int err = errno;
  bool ok = madvise(addr, size, MADV_HUGEPAGE) == 0;
  errno = err;
  return ok;
#else
  return false;
#endif
}

/* MADV_POPULATE_WRITE (Linux 5.14): the range's pages faulted in, writable,
 * by one call. On this project's machines a 4 KiB fault taken by touching
 * costs 1.40 us, a page populated 16 KiB at a time 1.03 us (bench/faultcost.c:
 * 64 MiB, best of 5). Older kernels (EINVAL) switch it off for good; a
 * failure for want of memory is left to the later touches. */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
static _Atomic(int) populate_off;   /* relaxed: a hint, set once */
bool kl_prim_populate(void *addr, size_t size) {
  if (atomic_load_explicit(&populate_off, memory_order_relaxed)) return false;
  int err = errno;
  bool ok = madvise(addr, size, MADV_POPULATE_WRITE) == 0;
  if (!ok && (errno == EINVAL || errno == ENOSYS || errno == EPERM)) atomic_store_explicit(&populate_off, 1, memory_order_relaxed);
  errno = err;
  return ok;
}

bool kl_prim_protect(void *addr, size_t size) {
  int err = errno;
  bool ok = mprotect(addr, size, PROT_NONE) == 0;
  errno = err;
  return ok;
}

bool kl_prim_free(void *addr, size_t size) {
  int err = errno;              /* free() must preserve errno */
  bool ok = munmap(addr, size) == 0;
  errno = err;
  return ok;
}

bool kl_prim_purge(void *addr, size_t size) {
  int err = errno;
  bool ok = madvise(addr, size, MADV_DONTNEED) == 0;
  errno = err;
  return ok;
}

/* Linux's process_madvise takes a vector of ranges: one call, and one
 * flush of every core's TLB, for all of them, where madvise interrupts
 * every core running the process once per range (holes.c gives back
 * thousands of 4 KiB runs: memeff's 6,400 madvise calls were 11% of its
 * time). Recent kernels accept MADV_DONTNEED there for the calling
 * process (this project's 6.18 machines do), named by PIDFD_SELF_THREAD,
 * which also stays right in a forked child. Elsewhere (older kernels,
 * seccomp, valgrind) the first failure switches to one madvise per range.
 * Relaxed: a racing first use at worst tries the call once more. */
#ifndef PIDFD_SELF_THREAD
#define PIDFD_SELF_THREAD (-10000)
#endif
static _Atomic(int) batch_purge_off;
void kl_prim_purge_ranges(const kl_prim_range_t *r, size_t n) {
  int err = errno;
  size_t done = 0;
#if defined(SYS_process_madvise)
  while (done < n && !kl_load_relaxed(&batch_purge_off) && !under_valgrind) {
    struct iovec iov[64];   /* malloc's slow path runs this: a small stack may be all there is */
    size_t k = n - done < 64 ? n - done : 64, bytes = 0;
    for (size_t i = 0; i < k; i++) {
      iov[i].iov_base = r[done + i].addr;
      iov[i].iov_len = r[done + i].size;
      bytes += r[done + i].size;
    }
    long got = syscall(SYS_process_madvise, PIDFD_SELF_THREAD, iov, k, MADV_DONTNEED, 0);
    if (got != (long)bytes) { kl_store_relaxed(&batch_purge_off, 1); break; }   /* the loop below redoes this chunk */
    done += k;
  }
#endif
  for (; done < n; done++) madvise(r[done].addr, r[done].size, MADV_DONTNEED);
  errno = err;
}

bool kl_prim_resident(void *addr, size_t size, uint8_t *vec) {
  int err = errno;
  bool ok = mincore(addr, size, (unsigned char *)vec) == 0;
  errno = err;
  if (ok) for (size_t i = 0; i < size / os_page; i++) vec[i] &= 1;
  return ok;
}

bool kl_prim_resize_in_place(void *addr, size_t old_size, size_t new_size) {
#ifdef MREMAP_MAYMOVE
  int err = errno;
  void *p = mremap(addr, old_size, new_size, 0);
  errno = err;
  return p == addr;
#else
  return false;
#endif
}

bool kl_prim_move(void *addr, size_t old_size, void *target, size_t new_size) {
#ifdef MREMAP_FIXED
  if (old_size > new_size) return false;
  int err = errno;
  bool ok = false;
  /* mremap(MREMAP_FIXED) unmaps the target before it looks at the source,
   * and a source spanning several kernel mappings then fails (EFAULT)
   * leaving a hole in the reservation that another thread's mmap can take.
   * So first make sure the source is one mapping: growing it in place by a
   * page fails with EFAULT exactly when it spans several (valgrind says
   * EINVAL); ENOMEM or EAGAIN mean one mapping with no room to grow. */
  void *probe = mremap(addr, old_size, old_size + os_page, 0);
  if (probe == addr) munmap((uint8_t *)addr + old_size, os_page);   /* it did grow: undo */
  else if (errno != ENOMEM && errno != EAGAIN) goto out;
  /* Move and grow in one call, so the result is one mapping again (a move
   * then a separate tail would make the next move of it fail the probe). */
  size_t moved = under_valgrind ? old_size : new_size;
  if (mremap(addr, old_size, moved, MREMAP_MAYMOVE | MREMAP_FIXED, target) == target) ok = true;
  else {
    /* With a one-mapping source, only a kernel out of memory fails after
     * the unmap. Map the hole back if there is one; if the range is still
     * mapped (EEXIST), the failure came before the unmap and it is ours. */
    void *p = mmap(target, moved, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (p != MAP_FAILED && p != target) munmap(p, moved);   /* an old kernel took it as a hint */
  }
out:
  errno = err;
  return ok;
#else
  return false;
#endif
}

const char *kl_prim_getenv(const char *name) {
  char **env = environ;
  if (env == NULL) return NULL;
  size_t n = strlen(name);
  for (; *env != NULL; env++) {
    if (strncmp(*env, name, n) == 0 && (*env)[n] == '=') return *env + n + 1;
  }
  return NULL;
}

void kl_prim_write_stderr(const char *buf, size_t len) {
  int err = errno;
  while (len > 0) {
    ssize_t w = write(2, buf, len);
    if (w <= 0) { if (w < 0 && errno == EINTR) continue; break; }
    buf += w; len -= (size_t)w;
  }
  errno = err;
}

uint64_t kl_prim_clock_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

_Noreturn void kl_prim_abort(void) { abort(); }

uint64_t kl_prim_random(void) {
  /* The kernel puts 16 random bytes on every process's stack (AT_RANDOM);
   * mixing in the clock and an address keeps forks and re-execs apart. */
  uint64_t r = 0;
  const uint8_t *at = (const uint8_t *)getauxval(AT_RANDOM);
  if (at) memcpy(&r, at + 8, sizeof r);   /* bytes 0-7 feed glibc's stack guard */
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  r ^= (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&r;
  return r | 1;
}

static pthread_key_t thread_key;
bool kl_prim_thread_key_init(void (*done)(void *)) {
  return pthread_key_create(&thread_key, done) == 0;
}
void kl_prim_thread_register(void *arg) { pthread_setspecific(thread_key, arg); }

size_t kl_prim_rss(void) {
  int err = errno;
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) { errno = err; return 0; }
  char buf[128];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  errno = err;
  if (n <= 0) return 0;
  buf[n] = '\0';
  const char *p = strchr(buf, ' ');     /* second field: resident pages */
  return p ? (size_t)strtoull(p + 1, NULL, 10) * os_page : 0;
}

bool kl_prim_thread_start(void *(*fn)(void *), void *arg) {
  pthread_t t;
  pthread_attr_t attr;
  if (pthread_attr_init(&attr) != 0) return false;
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  bool ok = pthread_create(&t, &attr, fn, arg) == 0;
  pthread_attr_destroy(&attr);
  return ok;
}

void kl_prim_sleep_ms(unsigned ms) {
  struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

long kl_prim_pid(void) { return (long)getpid(); }
bool kl_prim_atfork_child(void (*child)(void)) { return pthread_atfork(NULL, NULL, child) == 0; }
bool kl_prim_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void)) {
  return pthread_atfork(prepare, parent, child) == 0;
}
void kl_prim_yield(void) { sched_yield(); }
