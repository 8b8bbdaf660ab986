// SPDX-License-Identifier: MIT
#pragma once
// Whether this process has room for a pool of the asked size, checked
// before the first fork: a pool too big for the host's descriptor limit
// used to fail only at the worker that crossed it (EMFILE from socketpair
// after thousands of forks and seconds), and one past the kernel's pid
// range at the fork that found no pid.
#include <sys/types.h>

#include <cstddef>

#include <procpool/loop/pool_options.hpp>

namespace procpool::detail {

// Descriptors the host holds for each worker process: its doorbell
// (eventfd), its pidfd and its SharedBytes socket; WorkerOutput::capture
// adds the read ends of its stdout and stderr pipes.
size_t host_descriptors_per_worker(const PoolOptions& options);

// What a pool of `options` would hold at its fullest: every worker and
// every spare, one replacement on its way, the sweeper and the zygote.
size_t most_processes(const PoolOptions& options);

// Throws ResourceLimitExceeded naming RLIMIT_NOFILE when the descriptors
// open now and those the pool's processes need pass the soft limit, or
// naming kernel.pid_max / RLIMIT_NPROC when the pool's processes cannot
// exist beside the ones that do. A check of what is known when the pool
// starts: other threads may open descriptors later, and the pool still
// reports a worker it cannot start (Error, then PoolBroken).
void check_host_room(const PoolOptions& options);

}  // namespace procpool::detail
