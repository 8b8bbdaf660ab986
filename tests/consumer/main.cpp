// SPDX-License-Identifier: MIT
#include <procpool/procpool.hpp>

#include <iostream>

int square(int x) { return x * x; }
PROCPOOL_REGISTER(square);

int main() {
  procpool::ProcessPool pool({.workers = 1});
  int v = pool.submit(square, 12).get();
  std::cout << "square(12) = " << v << "\n";
  return v == 144 ? 0 : 1;
}
