// SPDX-License-Identifier: MIT
#pragma once
#include <procpool/mpi/host_link.hpp>

namespace procpool::mpi::detail {

// Rank 0's link to the agents, made by init(). Throws procpool::Error on an
// agent, before init(), or after finalize().
HostLink& host_link();

}  // namespace procpool::mpi::detail
