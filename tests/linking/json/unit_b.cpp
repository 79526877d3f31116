// unit_b.cpp — one of the translation units whose global constructors
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
      table.emplace("unit_b-" + std::to_string(i), std::make_unique<std::string>(100 + i, 'b'));
    register_name("unit_b", "ctor");
  }
};
Unit unit_global;
const int registered = register_name("unit_b", "static-init");
}  // namespace

std::size_t unit_b_size() { return unit_global.table.size() + (std::size_t)registered; }
