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

// The processes of a pool of `options` at its usual fullest: every worker
// and every spare, one replacement on its way, the sweeper and the zygote
// (more while stopped workers wait out stop_grace, or with a pid namespace
// per worker: the check is a lower bound).
size_t most_processes(const PoolOptions& options);

// Throws ResourceLimitExceeded naming kernel.pid_max or RLIMIT_NPROC when
// the pool's processes could never exist at once, or RLIMIT_NOFILE when the
// descriptors open now and those the pool needs pass the soft limit. A
// check of what is known when the pool starts, not a reservation: other
// processes take pids, other threads open descriptors, and the pool still
// reports a worker it cannot start (Error, then PoolBroken).
void check_host_room(const PoolOptions& options);

}  // namespace procpool::detail
