// SPDX-License-Identifier: MIT
#pragma once
// Namespaces::pid: a worker in a PID namespace of its own, where it can
// neither see nor signal the host or any other process outside it.
//
// The first process of a PID namespace is its init, and the kernel spares
// an init every signal it has no handler for, even one it sends itself: a
// worker that were its namespace's init would survive its own crash's
// re-raise, abort() and raise(SIGKILL). So the worker is not the init. The
// host's child (the keeper) enters the namespaces and forks the init, a
// few lines that fork the worker (pid 2) and reap; three processes:
//
//   host ─ keeper (host's pid namespace) ─ init (pid 1) ─ worker (pid 2)
//
// - The keeper is what the host knows: its pid, pidfd and process group.
//   It forwards the signals sent to it to the worker, and when the init
//   reports how the worker ended, ends the same way (the same exit code,
//   or the same signal), so that the host reads the worker's status from
//   its own child as without the namespace.
// - The init dies with the keeper (PR_SET_PDEATHSIG), and every process in
//   the namespace dies with the init (the kernel's rule). A SIGKILL of the
//   keeper, or of the process group (the three share it), ends them all.
// - /proc is mounted again in a mount namespace of the worker's own, so
//   that it lists only the namespace's processes.
#include <atomic>
#include <cstdint>

namespace procpool::detail {

// Called by a worker process early in its set-up, single-threaded, with no
// lock held. Returns nullptr in the worker, now pid 2 of a new PID
// namespace (and in a new mount namespace, inside a user namespace of its
// own when the process lacks CAP_SYS_ADMIN). Returns the step that failed,
// with errno set, in the process where it failed (the caller's, or the
// init's before it forked the worker); the caller then exits. The keeper
// and the init never return. `serving_pid`, when not null, receives the
// worker's pid as the host sees it (for the host's statistics only: a
// worker can write any value there, and the host never signals it).
const char* enter_pid_namespace(std::atomic<int32_t>* serving_pid) noexcept;

}  // namespace procpool::detail
