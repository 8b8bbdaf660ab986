// SPDX-License-Identifier: MIT
#pragma once
// pidfd operations on a worker process.
#include <sys/types.h>

namespace procpool::detail {

// pidfd_send_signal(2): exact, since the pid cannot be reused while its
// pidfd is open and the process unreaped.
int send_signal(int pidfd, int sig) noexcept;

// Reaps the process behind `pidfd`; fills signal (or 0) and exit code (or
// -1). Both stay unknown (0 and -1) when the status was taken elsewhere: the
// application ignores SIGCHLD, or reaps every child itself.
void reap(int pidfd, int& signal, int& exit_code) noexcept;

}  // namespace procpool::detail
