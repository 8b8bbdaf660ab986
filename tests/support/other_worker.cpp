// SPDX-License-Identifier: MIT
// A worker program (PoolOptions::worker_program) whose registry is not the
// test suites': a pool that spawns it must be told so, not run the wrong
// functions.
#include <procpool/procpool.hpp>

namespace {
int another_function(int x) { return x + 1000; }
}  // namespace
PROCPOOL_REGISTER(another_function);

int main(int argc, char** argv) {
  procpool::init(argc, argv);  // a worker never returns from it
  return 0;
}
