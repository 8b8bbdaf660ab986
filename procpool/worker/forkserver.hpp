// SPDX-License-Identifier: MIT
#pragma once
// StartMethod::forkserver: the zygote, a process init() forks while the
// program is still small and single-threaded, forks every worker of every
// forkserver pool of the process. Host side here; the zygote's loop and
// why it can give the host its workers as children are in forkserver.cpp.
#include <sys/types.h>

namespace procpool::detail {

class WorkerSegment;
struct WorkerConfig;

// Forks the zygote of this process (init() calls it). Throws
// procpool::Error if fork or socketpair fails. In a process forked from
// one that had a zygote, it forgets the parent's and forks its own.
void start_zygote();
// Null, or why this process cannot ask a zygote for workers (init() not
// called here, the zygote gone or unable to clone).
const char* zygote_unavailable() noexcept;
// This process's zygote, or -1: a child that lives as long as the process.
pid_t zygote_pid() noexcept;
// Asks the zygote for a worker serving `segment` (a memfd segment). The
// worker is this process's child. Throws procpool::Error naming the cause.
pid_t zygote_start_worker(const WorkerConfig& config, const WorkerSegment& segment);
// Asks it for a pool's sweeper reading `channel` (group_sweeper.hpp), also
// this process's child. Throws procpool::Error naming the cause.
pid_t zygote_start_sweeper(int channel);

}  // namespace procpool::detail
