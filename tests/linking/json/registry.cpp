// registry.cpp — built into libregistry.a (the static library of the
// jsoncpp scenario). Its own global object allocates at start-up and frees
// at exit, after main returns.
#include "registry.h"

std::map<std::string, std::vector<std::string>> &registry() {
  static std::map<std::string, std::vector<std::string>> r;
  return r;
}

int register_name(const char *unit, const char *name) {
  registry()[unit].push_back(std::string(name) + std::string(48, '.'));
  return 1;
}

std::size_t registry_size() {
  std::size_t n = 0;
  for (auto &kv : registry()) n += kv.second.size();
  return n;
}

namespace {
struct LibGlobal {
  std::vector<std::string> names;
  LibGlobal() {
    for (int i = 0; i < 50; i++) names.push_back("lib-" + std::to_string(i) + std::string(64, 'l'));
    register_name("lib", "libglobal");
  }
  ~LibGlobal() { names.clear(); names.shrink_to_fit(); }
} lib_global;
}  // namespace
