// SPDX-License-Identifier: MIT
#pragma once
// What a pool has done and holds (ProcessPool::stats()), and where one call
// is (Future::status()).
#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace procpool {

// Where a call is, as concurrent.futures' Future tells it (running(),
// done(), cancelled()), with the worker that runs it.
enum class CallState {
  pending,    // in the pool's queue, or handed to a worker that has not begun it
  running,    // its worker has begun it
  done,       // settled: a value or an error (cancelled excepted)
  cancelled,  // settled with TaskCancelled
};

struct CallStatus {
  CallState state = CallState::pending;
  pid_t worker = 0;  // the worker running it; 0 unless running
};

// What one call cost in its worker (CallOptions::measure_usage), as the
// worker reported it: wall and CPU time (the worker process's, its threads
// included) from its start to its end, and the highest resident memory of
// the worker during the call.
struct CallUsage {
  std::chrono::nanoseconds wall{};
  std::chrono::nanoseconds cpu{};
  uint64_t peak_rss_bytes = 0;
};

// One worker slot: the process now in it, and what it holds.
struct WorkerStats {
  size_t index = 0;
  pid_t pid = 0;                              // 0 while the slot has no live process (being replaced)
  size_t calls_held = 0;                      // handed to it and not answered yet
  uint64_t calls_answered = 0;                // answers read from this process (not its predecessors)
  uint64_t rss_bytes = 0;                     // resident memory now, from /proc (0 if unreadable)
  std::chrono::steady_clock::duration age{};  // since it was forked
  // Its recent time per call, as the worker measures it (calls that queued
  // back to back only; 0: none yet): what paces prefetch_per_worker.
  std::chrono::nanoseconds pace{};
};

// Counters since the pool was made. Each call the pool accepted ends in
// exactly one of succeeded, raised, crashed, timed_out, cancelled,
// protocol_errors, limit_exceeded, shut_down, other_errors; a map counts
// one call per chunk. Calls refused before the pool held them (an unknown
// function, arguments that cannot be encoded) are not counted.
struct PoolStats {
  uint64_t submitted = 0;        // calls the pool accepted
  uint64_t succeeded = 0;        // settled with a value
  uint64_t raised = 0;           // settled with the exception the task threw
  uint64_t crashed = 0;          // WorkerCrashed
  uint64_t timed_out = 0;        // TaskTimeout
  uint64_t cancelled = 0;        // TaskCancelled
  uint64_t protocol_errors = 0;  // ProtocolError (the worker broke the protocol)
  uint64_t limit_exceeded = 0;   // ResourceLimitExceeded
  uint64_t shut_down = 0;        // PoolShutdown
  uint64_t other_errors = 0;     // any other procpool::Error (a failed start, ...)
  uint64_t settled() const noexcept {
    return succeeded + raised + crashed + timed_out + cancelled + protocol_errors + limit_exceeded + shut_down +
           other_errors;
  }

  uint64_t worker_deaths = 0;  // worker processes that ended other than by the pool's shutdown
  uint64_t respawns = 0;       // workers that took the place of one that went
  uint64_t spares_taken = 0;   // of those, spares (PoolOptions::spare_workers) that took it at once
  size_t spare_workers = 0;    // spares forked and idle now
  // Of those deaths, workers that ended their own lives as asked, having
  // served max_tasks_per_child calls, or over max_worker_memory.
  uint64_t retired_after_max_tasks = 0;
  uint64_t retired_over_memory = 0;
  // Calls taken back from a worker whose call ahead of them ran long while
  // another worker had none, and sent to that one (work stealing).
  uint64_t stolen = 0;
  size_t queued = 0;     // calls in the pool's queue, given to no worker yet
  size_t in_flight = 0;  // calls handed to workers, not answered yet
  std::vector<WorkerStats> workers;
};

}  // namespace procpool
