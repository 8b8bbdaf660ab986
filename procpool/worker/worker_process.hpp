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
// (PR_SET_PDEATHSIG, then a check that the parent did not already go),
// default signal dispositions except SIGINT (ignored: Ctrl-C is the host's
// to handle), an empty signal mask, fds closed but 0-2 and the doorbell,
// crash handlers; a set-up failure is written to control().setup_error and
// the child exits with kExitSetupFailed. Call it from a thread that lives as
// long as the worker should: PR_SET_PDEATHSIG fires when that thread ends.
// Throws procpool::Error when fork or pidfd_open fails (nothing is left).
SpawnedWorker spawn_worker(WorkerSegment& segment, const WorkerConfig& config);

}  // namespace procpool::detail
