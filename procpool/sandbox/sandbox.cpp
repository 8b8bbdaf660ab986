// SPDX-License-Identifier: MIT
#include <procpool/sandbox/sandbox.hpp>

namespace procpool {

Sandbox Sandbox::compute_only(Action otherwise) {
  Sandbox s;
  s.enabled_ = true;
  s.otherwise_ = otherwise;
  return s;
}

Sandbox Sandbox::read_only_files(std::vector<std::string> paths, Action otherwise) {
  Sandbox s = compute_only(otherwise);
  s.readable_paths_ = std::move(paths);
  return s;
}

Sandbox& Sandbox::allow(const std::string& syscall) {
  denied_.erase(syscall);
  allowed_.insert(syscall);
  return *this;
}

namespace {
constexpr const char* kMappingSyscalls[] = {"mmap", "mprotect", "pkey_mprotect"};
}

Sandbox& Sandbox::allow_executable_memory() {
  for (const char* name : kMappingSyscalls) allow(name);
  return *this;
}

bool Sandbox::executable_memory() const {
  for (const char* name : kMappingSyscalls)
    if (allowed_.count(name) == 0) return false;
  return true;
}

Sandbox& Sandbox::deny(const std::string& syscall, Action action) {
  allowed_.erase(syscall);
  denied_[syscall] = action;
  return *this;
}

Sandbox& Sandbox::environment(std::vector<std::string> variables) {
  variables_ = std::move(variables);
  return *this;
}

}  // namespace procpool
