// SPDX-License-Identifier: MIT
#pragma once
// PoolOptions::namespaces: Linux namespaces of a worker's own, entered
// (unshare) after its initializer and before its sandbox and its first
// call. A host without CAP_SYS_ADMIN gets them inside a user namespace of
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

  bool any() const noexcept { return network || ipc || mount || uts; }
};

}  // namespace procpool

namespace procpool::detail {

// The unshare(2) flags for `n` (0 for none).
int namespace_flags(const Namespaces& n) noexcept;
// Throws procpool::Error if this kernel (or this process's privileges)
// refuses a worker those namespaces: a child forked for the purpose tries.
void check_namespaces(int flags);
// In the worker, single-threaded: enters them. Returns nullptr, or the
// step that failed with errno set.
const char* enter_namespaces(int flags) noexcept;

}  // namespace procpool::detail
