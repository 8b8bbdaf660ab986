// SPDX-License-Identifier: MIT
// Every suite's main: procpool::init first (the forkserver's zygote is
// forked before doctest or any test has run), then doctest. With
// --start-method=fork|forkserver|spawn, the suite's pools use that start
// method unless a test asks for one (ctest runs the core suites under
// each).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>
#include <string_view>
#include <vector>

#include <procpool/procpool.hpp>

int main(int argc, char** argv) {
  procpool::init(argc, argv);
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    std::string_view arg = argv[i];
    constexpr std::string_view flag = "--start-method=";
    if (arg.substr(0, flag.size()) != flag) {
      rest.push_back(argv[i]);
      continue;
    }
    std::string_view name = arg.substr(flag.size());
    if (name == "fork") procpool::set_default_start_method(procpool::StartMethod::fork);
    else if (name == "forkserver") procpool::set_default_start_method(procpool::StartMethod::forkserver);
    else if (name == "spawn") procpool::set_default_start_method(procpool::StartMethod::spawn);
    else {
      std::fprintf(stderr, "unknown start method '%.*s'\n", static_cast<int>(name.size()), name.data());
      return 2;
    }
  }
  doctest::Context context(static_cast<int>(rest.size()), rest.data());
  return context.run();
}
