// SPDX-License-Identifier: MIT
#include <procpool/common/type_name.hpp>

#include <cxxabi.h>

#include <cstdlib>
#include <memory>

namespace procpool::detail {
namespace {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
}

}  // namespace

std::string demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> out(abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  std::string s = (status == 0 && out) ? out.get() : mangled;
  replace_all(s, "std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >", "std::string");
  replace_all(s, "std::__cxx11::", "std::");
  return s;
}

}  // namespace procpool::detail
