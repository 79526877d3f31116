// registry.h — a process-wide registry that global constructors in several
// translation units and in a static library write to before main runs.
// It is a function-local static, so whichever constructor runs first makes
// it; each write allocates, before the program (and perhaps keel) has done
// anything else.
#pragma once
#include <map>
#include <string>
#include <vector>

std::map<std::string, std::vector<std::string>> &registry();
int register_name(const char *unit, const char *name);
std::size_t registry_size();
