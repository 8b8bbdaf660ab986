// SPDX-License-Identifier: MIT
#pragma once
#include <sys/types.h>

#include <procpool/common/worker_segment.hpp>
#include <procpool/worker/worker_config.hpp>

namespace procpool::detail {

struct SpawnedWorker {
  pid_t pid;
  int pidfd;  // owned by the caller; readable when the worker has exited
};

// Forks a worker serving `segment`. In the child: dies with the parent
// (PR_SET_PDEATHSIG, then a check that the parent did not already go), its
// own process group (pid = pgid; the pool kills the group),
// default signal dispositions except SIGINT (ignored: Ctrl-C is the host's
// to handle), an empty signal mask, fds closed but 0-2 and the doorbell,
// crash handlers; a set-up failure is written to control().setup_error and
// the child exits with kExitSetupFailed. Call it from a thread that lives as
// long as the worker should: PR_SET_PDEATHSIG fires when that thread ends.
// Throws procpool::Error when fork or pidfd_open fails (nothing is left).
SpawnedWorker spawn_worker(WorkerSegment& segment, const WorkerConfig& config);
// Done once per process before the first fork (spawn_worker calls it): what
// a child must not do itself (load the unwinder), and the fork handlers
// that make a task's own children die with their parent.
void prepare_host_for_workers();

}  // namespace procpool::detail
