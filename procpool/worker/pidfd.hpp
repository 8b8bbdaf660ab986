// SPDX-License-Identifier: MIT
#pragma once
// pidfd operations on a worker process.
#include <sys/types.h>

namespace procpool::detail {

// pidfd_send_signal(2): exact, since the pid cannot be reused while its
// pidfd is open and the process unreaped.
int send_signal(int pidfd, int sig) noexcept;

// Whether the process behind `pidfd` has exited (its pidfd polls readable).
// The host asks before it believes a completed wait on the pidfd: the
// reactor can complete one with the worker alive (loop/death_watch.hpp).
bool has_exited(int pidfd) noexcept;

// SIGKILL to a worker's process group (its pid). Call it before reaping the
// worker: until then its pid, and so the group's id, cannot be reused.
void kill_process_group(pid_t pgid) noexcept;
// Reaps the process behind `pidfd`, waiting for it to exit if it has not
// (a non-blocking pidfd too); fills signal (or 0) and exit code (or -1).
// Both stay unknown (0 and -1) when the status was taken elsewhere: the
// application ignores SIGCHLD, or reaps every child itself.
void reap(int pidfd, int& signal, int& exit_code) noexcept;

}  // namespace procpool::detail
