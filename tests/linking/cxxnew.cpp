// cxxnew.cpp — the C++ program of the linking tests, built once per mode.
// Every form of operator new/delete (plain, array, nothrow, sized, aligned up
// to 4096, and their combinations) must hand out keel blocks with the asked
// alignment; std containers and exceptions (libstdc++'s own allocations)
// must come from keel too; global objects allocate in constructors and free
// in destructors after main returns.
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>
#include "keelapi.h"
#include "../harness.h"

namespace {
struct Global {
  std::vector<std::string> v;
  Global() { for (int i = 0; i < 100; i++) v.push_back(std::string(40 + i, 'g')); }
  ~Global() { v.clear(); v.shrink_to_fit(); }
};
Global g1, g2;

template <std::size_t A> struct alignas(A) Over { unsigned char b[A]; };

bool aligned(const void *p, std::size_t a) { return (reinterpret_cast<std::uintptr_t>(p) & (a - 1)) == 0; }

template <std::size_t A> void check_aligned_forms() {
  Over<A> *o = new Over<A>;                       // aligned new (align_val_t)
  CHECKF(kl_is_keel(o) && aligned(o, A), "new Over<%zu>", A);
  std::memset(o, 1, sizeof *o);
  delete o;                                       // sized aligned delete
  Over<A> *arr = new Over<A>[3];
  CHECKF(kl_is_keel(arr) && aligned(arr, A), "new Over<%zu>[3]", A);
  delete[] arr;
  Over<A> *n = new (std::nothrow) Over<A>;
  CHECKF(n && kl_is_keel(n) && aligned(n, A), "nothrow new Over<%zu>", A);
  delete n;
  void *raw = ::operator new(100, std::align_val_t(A));
  CHECKF(kl_is_keel(raw) && aligned(raw, A), "operator new(100, %zu)", A);
  ::operator delete(raw, 100, std::align_val_t(A));
  raw = ::operator new[](100, std::align_val_t(A), std::nothrow);
  CHECK(raw && aligned(raw, A));
  ::operator delete[](raw, std::align_val_t(A), std::nothrow);
}
}  // namespace

int main() {
  CHECK(kl_is_keel(g1.v[5].data()));   // allocated by a global constructor
  int *i = new int(5); CHECK(kl_is_keel(i)); delete i;
  int *a = new int[100]; CHECK(kl_is_keel(a)); delete[] a;
  int *n = new (std::nothrow) int; CHECK(kl_is_keel(n)); delete n;
  void *r = ::operator new(72); CHECK(kl_is_keel(r)); ::operator delete(r, 72);
  r = ::operator new[](72); CHECK(kl_is_keel(r)); ::operator delete[](r, 72);
  r = ::operator new(72, std::nothrow); CHECK(kl_is_keel(r)); ::operator delete(r, std::nothrow);
  check_aligned_forms<16>();
  check_aligned_forms<32>();
  check_aligned_forms<64>();
  check_aligned_forms<256>();
  check_aligned_forms<1024>();
  check_aligned_forms<4096>();
  // A failing new throws std::bad_alloc (and the nothrow form returns null).
  bool threw = false;
  try { void *big = ::operator new(SIZE_MAX / 2); ::operator delete(big); }
  catch (const std::bad_alloc &) { threw = true; }
  CHECK(threw);
  CHECK(::operator new(SIZE_MAX / 2, std::nothrow) == nullptr);
  // libstdc++'s own allocations: a string, a shared_ptr control block, an
  // exception object, from this thread and another.
  std::string s(200, 'x'); CHECK(kl_is_keel(s.data()));
  auto sp = std::make_shared<std::vector<int>>(50); CHECK(kl_is_keel(sp->data()));
  try { throw std::runtime_error(std::string(100, 'e')); }
  catch (const std::exception &e) { CHECK(std::strlen(e.what()) == 100); }
  bool thread_ok = false;
  std::thread t([&] { auto *v = new std::vector<int>(1000, 3); thread_ok = kl_is_keel(v->data()); delete v; });
  t.join();
  CHECK(thread_ok);
  return KL_DONE();
}
