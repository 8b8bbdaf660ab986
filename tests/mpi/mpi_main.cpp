// SPDX-License-Identifier: MIT
// The MPI suites' main: procpool::mpi::init first, on every rank (only rank
// 0 returns, and runs the tests); finalize at the end stops the agents, so
// every rank exits with the suite's status.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <procpool/mpi/mpi.hpp>

#include "mpi/suite_options.hpp"

int main(int argc, char** argv) {
  procpool::mpi::init(argc, argv, suite::mpi_options());
  doctest::Context context(argc, argv);
  int status = context.run();
  procpool::mpi::finalize();
  return status;
}
