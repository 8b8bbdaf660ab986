// SPDX-License-Identifier: MIT
#pragma once
// Per-worker resource limits (PoolOptions::limits), applied with setrlimit
// in each worker as it starts, before its initializer. A limit left unset
// keeps what the worker inherited from the host.
#include <chrono>
#include <cstdint>
#include <optional>

namespace procpool {

struct ResourceLimits {
  // Address space in bytes (RLIMIT_AS). It counts everything the worker
  // maps, the host's mappings it inherited at fork included (threads'
  // stacks, allocator arenas): set it well above the host's own size. An
  // allocation past it throws std::bad_alloc in the task; one the task does
  // not catch fails the call with ResourceLimitExceeded("memory") and the
  // worker stays; a worker that dies after an allocation failed (a
  // bad_alloc in a noexcept function, say) fails its call with the same
  // error and is replaced. Not usable under AddressSanitizer, whose shadow
  // memory needs terabytes of address space.
  std::optional<uint64_t> memory{};
  // CPU time per call. Before each call the worker sets RLIMIT_CPU's soft
  // limit to the CPU time it has used, rounded up to a second, plus this;
  // the kernel's SIGXCPU then kills it, the call fails with
  // ResourceLimitExceeded("cpu") and the worker is replaced. Never early,
  // up to a second late (the limit's unit). Wall time is `timeout`'s job.
  std::optional<std::chrono::seconds> cpu{};
  // Open descriptors (RLIMIT_NOFILE): open() fails with EMFILE past it.
  std::optional<uint64_t> open_files{};
  // Largest file a task may write, in bytes (RLIMIT_FSIZE): a write past
  // it kills the worker with SIGXFSZ; the call fails with
  // ResourceLimitExceeded("file_size") and the worker is replaced.
  std::optional<uint64_t> file_size{};
  // Processes of the worker's user (RLIMIT_NPROC): fork() fails with
  // EAGAIN past it. The kernel counts every process of the user, not only
  // the worker's, and does not enforce it for root (or CAP_SYS_RESOURCE).
  std::optional<uint64_t> processes{};
  // Core dump size (RLIMIT_CORE): 0, off, by default, so that a crashing
  // task does not write a core per crash; nullopt keeps the host's.
  std::optional<uint64_t> core_dumps = 0;
};

}  // namespace procpool
