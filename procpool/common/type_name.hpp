// SPDX-License-Identifier: MIT
#pragma once
// Readable type names for error messages and signature fingerprints.
#include <cstdint>
#include <string>
#include <string_view>
#include <typeinfo>

namespace procpool::detail {

// Demangles a typeid name and shortens the standard library's spellings
// (std::__cxx11::basic_string<char, ...> becomes std::string).
std::string demangle(const char* mangled);

template <class T>
std::string type_name() {
  if constexpr (std::is_void_v<T>) return "void";
  else return demangle(typeid(T).name());
}

// FNV-1a: stable across processes of the same build, cheap, and only used
// to compare signatures (never as a security boundary).
constexpr uint64_t fingerprint(std::string_view s) noexcept {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  return h;
}

}  // namespace procpool::detail
