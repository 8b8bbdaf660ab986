// SPDX-License-Identifier: MIT
// Must not compile, with procpool's one-line reason first: a worker can
// run only a registered free function, not a lambda.
#include <procpool/procpool.hpp>

int main() {
  procpool::ProcessPool pool({.workers = 1});
  auto f = pool.submit([](int x) { return x; }, 1);
  return f.get();
}
