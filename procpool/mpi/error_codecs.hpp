// SPDX-License-Identifier: MIT
#pragma once
#include <string>

namespace procpool::mpi::detail {

// Makes procpool's own errors that an agent's pool raises (WorkerCrashed,
// TaskTimeout, TaskCancelled, PoolShutdown, PoolBroken) cross to the host
// as their own types, through the exception codecs every answer uses
// (common/exception_codec.hpp). A WorkerCrashed arrives as
// RemoteWorkerCrashed with `rank` and `host`, those of the agent that
// encoded it. Called by init() on every rank, before any pool exists.
void register_error_codecs(int rank, const std::string& host);

}  // namespace procpool::mpi::detail
