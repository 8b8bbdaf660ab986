// SPDX-License-Identifier: MIT
#pragma once
#include <chrono>
#include <optional>

namespace procpool {

// Options of one call (ProcessPool::submit_with, call_with). Each one left
// unset takes the pool's (PoolOptions); later per-call options join here.
struct CallOptions {
  // How long the call may run, counted from when its worker may have begun
  // it (time in the queue does not count). At the deadline the call fails
  // with TaskTimeout and its worker (with everything it forked) is stopped
  // and replaced. 0 (or less): no deadline, whatever the pool's default.
  std::optional<std::chrono::milliseconds> timeout{};
  // Whether Future::cancel() on a call a worker has begun stops that worker
  // (the call fails with TaskCancelled) rather than letting it run to its end.
  std::optional<bool> cancel_running{};
  // Measure the call in its worker (Future::usage(): wall and CPU time, peak
  // resident memory). Costs a few system calls on each side of the call.
  std::optional<bool> measure_usage{};
};

}  // namespace procpool
