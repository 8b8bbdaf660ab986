// SPDX-License-Identifier: MIT
#pragma once
#include <mpi.h>

#include <chrono>
#include <cstddef>

#include <procpool/loop/process_pool.hpp>

namespace procpool::mpi::detail {

// An agent's life once welcomed: takes calls from rank 0 on `comm`, runs
// them on `pool`, answers each (protocol.hpp), until a Stop frame and the
// answers to every call before it are out. One thread: this one calls MPI;
// the pool's threads only hand answers over (a mutex and a condition
// variable). While it holds calls (or receives one) it sends rank 0 a
// heartbeat every `heartbeat` (0: never). Throws MpiError, or
// MalformedFrame if rank 0 broke the protocol.
void serve_host(MPI_Comm comm, ProcessPool& pool, size_t max_message_bytes, std::chrono::milliseconds heartbeat);

}  // namespace procpool::mpi::detail
