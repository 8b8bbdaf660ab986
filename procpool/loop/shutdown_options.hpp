// SPDX-License-Identifier: MIT
#pragma once

namespace procpool {

// ProcessPool::shutdown(ShutdownOptions), as concurrent.futures'
// Executor.shutdown(wait, cancel_futures). Either way the pool accepts no
// new call (they fail with PoolShutdown) and threads blocked in submit at
// max_pending fail with PoolShutdown.
struct ShutdownOptions {
  // true: returns once the calls already accepted have finished and the
  // workers are reaped. false: returns at once; the pool's own thread lets
  // those calls finish, then stops and reaps the workers by itself.
  bool wait = true;
  // true: every call no worker has begun (in the pool's queue, or handed
  // to a worker behind a call it has not finished, where cancel() can
  // prove it will not begin) fails with TaskCancelled at once; calls
  // already running finish.
  bool cancel_futures = false;
};

}  // namespace procpool
