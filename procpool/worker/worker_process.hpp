// SPDX-License-Identifier: MIT
#pragma once
#include <sys/types.h>

#include <string>

#include <procpool/common/worker_segment.hpp>
#include <procpool/worker/start_method.hpp>
#include <procpool/worker/worker_config.hpp>

namespace procpool::detail {

struct SpawnedWorker {
  pid_t pid;
  int pidfd;  // owned by the caller; readable when the worker has exited
};

struct LaunchMessage;

// Closes every descriptor from 3 up but the two kept (which may be below 3
// in a process that started with 0-2 closed): close_range(2), or a loop on
// a kernel without it. Async-signal-safe.
void close_inherited_fds(int keep_a, int keep_b) noexcept;

// Starts a worker serving `segment` by `method`: forked here (fork), asked
// of the zygote (forkserver) or exec'd (spawn: `program`, empty for this
// program). The segment must be a memfd segment for the latter two. In
// every case the worker is this process's child, watched by a pidfd. In the
// worker: dies with the thread that forked it, or that called init()
// (PR_SET_PDEATHSIG, then a check that the host did not already go), its
// own process group (pid = pgid; the pool kills the group),
// default signal dispositions except SIGINT (ignored: Ctrl-C is the host's
// to handle), an empty signal mask, fds closed but 0-2 and the doorbell,
// crash handlers; a set-up failure is written to control().setup_error and
// the child exits with kExitSetupFailed. Call it from a thread that lives as
// long as the worker should: PR_SET_PDEATHSIG fires when that thread ends.
// Throws procpool::Error when fork or pidfd_open fails (nothing is left).
SpawnedWorker start_worker(StartMethod method, WorkerSegment& segment, const WorkerConfig& config,
                           const std::string& program);
// A worker that was sent its launch message (by the zygote that forked it,
// or on its bootstrap socket after exec) sets itself up from it and serves.
[[noreturn]] void become_launched_worker(LaunchMessage& message) noexcept;
// Flushes stdout and stderr before a fork, unless another thread holds one
// (then it is skipped: the fork never waits for a lock).
void flush_standard_streams() noexcept;
// Done once per process before the first fork (start_worker calls it): what
// a child must not do itself (load the unwinder), and the fork handlers
// that make a task's own children die with their parent.
void prepare_host_for_workers();

}  // namespace procpool::detail
