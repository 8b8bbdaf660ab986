// SPDX-License-Identifier: MIT
#pragma once
// PoolOptions::namespaces: Linux namespaces of a worker's own, entered
// (unshare) after its initializer and before its sandbox and its first
// call; a PID namespace as the worker starts, before its initializer
// (pid_namespace.hpp). A host without CAP_SYS_ADMIN gets them inside a user namespace of
// the worker's own, where its uid and gid map to themselves. Checked when
// the pool is made: where the kernel refuses one, the pool is refused with
// procpool::Error naming it, and never runs a worker without it.
#include <cstdint>

namespace procpool {

struct Namespaces {
  // No network: a network namespace with only a loopback, down.
  bool network = false;
  // System V IPC objects and POSIX message queues of its own.
  bool ipc = false;
  // A mount table of its own: what a task mounts or unmounts is not the
  // host's (it sees the same files).
  bool mount = false;
  // Its own hostname and domain name.
  bool uts = false;
  // A PID namespace of its own, where the worker is pid 2 under a small
  // init (pid 1), with /proc mounted again (in a mount namespace of its
  // own) to list only them: it can neither see nor signal a process outside
  // it, the host included. Costs two more processes per worker, forked as
  // it starts (pid_namespace.hpp).
  bool pid = false;

  bool any() const noexcept { return network || ipc || mount || uts || pid; }
};

}  // namespace procpool

namespace procpool::detail {

// The unshare(2) flags for `n` (0 for none).
int namespace_flags(const Namespaces& n) noexcept;
// Throws procpool::Error if this kernel (or this process's privileges)
// refuses a worker those namespaces: a child forked for the purpose tries.
void check_namespaces(int flags);
// In the worker, single-threaded: enters them, all but CLONE_NEWPID.
// Returns nullptr, or the step that failed with errno set.
const char* enter_namespaces(int flags) noexcept;

// Without CAP_SYS_ADMIN (not root) the other namespaces need a user
// namespace: the process's uid and gid map to themselves inside it (the one
// mapping an unprivileged process may write), so that files and signals
// see the same ids.
bool needs_user_namespace() noexcept;
struct IdMaps {
  char uid[64];
  char gid[64];
};
// This process's maps, formatted before the unshare (no allocation).
IdMaps id_maps() noexcept;
// Writes them for this process, just after unshare(CLONE_NEWUSER).
const char* write_id_maps(const IdMaps& maps) noexcept;

}  // namespace procpool::detail
