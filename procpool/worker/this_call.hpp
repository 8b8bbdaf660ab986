// SPDX-License-Identifier: MIT
#pragma once

// What a task can ask about the call it is running.
namespace procpool::this_call {

// True once the pool has asked this call's worker to stop: the call ran
// past its deadline, or was cancelled while it ran, and PoolOptions::
// stop_grace gives it time to end before SIGKILL (SIGTERM came with the
// request). A long task may poll it and return early; its result is
// discarded (the call has already failed), and the worker exits instead of
// beginning another call. Always false outside a worker, and with no
// stop_grace (the worker is killed at once). Cheap: one atomic load.
bool stop_requested() noexcept;

}  // namespace procpool::this_call
