// unit_a.cpp — one of the translation units whose global constructors
// allocate before main (and whose destructors free after it).
#include <memory>
#include <string>
#include <unordered_map>
#include "registry.h"

namespace {
struct Unit {
  std::unordered_map<std::string, std::unique_ptr<std::string>> table;
  Unit() {
    for (int i = 0; i < 200; i++)
      table.emplace("unit_a-" + std::to_string(i), std::make_unique<std::string>(100 + i, 'a'));
    register_name("unit_a", "ctor");
  }
};
Unit unit_global;
const int registered = register_name("unit_a", "static-init");
}  // namespace

std::size_t unit_a_size() { return unit_global.table.size() + (std::size_t)registered; }
