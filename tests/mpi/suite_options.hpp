// SPDX-License-Identifier: MIT
#pragma once
// The options the MPI suites start with (mpi_main.cpp), for the tests that
// depend on them.
#include <cstddef>

#include <procpool/mpi/init.hpp>

namespace suite {

// Small enough that a test can exceed it cheaply; large enough for every
// payload the suites send otherwise (at most a few MiB).
inline constexpr size_t kMaxMessageBytes = size_t{32} << 20;

inline procpool::mpi::MpiOptions mpi_options() {
  procpool::mpi::MpiOptions options;
  options.agent_pool.max_message_bytes = kMaxMessageBytes;
  return options;
}

}  // namespace suite
