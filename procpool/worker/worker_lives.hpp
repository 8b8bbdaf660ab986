// SPDX-License-Identifier: MIT
#pragma once
// A worker's side of its life's limits (DESIGN.md, "Workers' lives"): the
// resource limits and the initializer it applies as it starts, and the
// checks around each call that end its life (max_tasks_per_child,
// max_worker_memory) or bound it (the per-call CPU limit). With none of
// the options set, a call costs one predictable branch here.
#include <cstdint>
#include <string>

#include <procpool/common/worker_segment.hpp>
#include <procpool/worker/worker_config.hpp>

namespace procpool::detail {

class WorkerLives {
 public:
  // In a new worker, after its descriptors are closed and before it says it
  // is ready: applies config.limits (setrlimit), opens /proc/self/statm for
  // max_rss, installs the new_handler that marks allocation failures.
  // Returns the step that failed (errno set), or nullptr.
  const char* start(const WorkerConfig& config, ControlBlock& control) noexcept;
  // Runs the initializer, if any. If it throws, writes the exception into
  // control.startup_error and exits with kExitInitializerFailed.
  void run_initializer(const WorkerConfig& config, ControlBlock& control) noexcept;

  // Whether before_call/after_call have anything to do.
  bool active() const noexcept { return active_; }
  // Before a call: the CPU limit for this call, the allocation-failure mark cleared.
  void before_call() noexcept;
  // After a call's answer is published, `served` calls in all: the exit
  // code to end this worker's life with, or 0 to go on.
  int after_call(uint64_t served) noexcept;

 private:
  uint64_t resident_bytes() const noexcept;  // 0 if it cannot be read

  bool active_ = false;
  uint64_t max_calls_ = 0;
  uint64_t max_rss_ = 0;
  int statm_fd_ = -1;         // /proc/self/statm, opened at start (pread: no seek, no open per call)
  uint64_t cpu_seconds_ = 0;  // per call; 0: no CPU limit
  uint64_t cpu_hard_ = 0;     // RLIMIT_CPU's hard limit, which the soft one cannot pass
};

// The worker's one instance (set up in worker_process.cpp, used by the loop).
WorkerLives& worker_lives() noexcept;

// Inside a catch block in a worker with a memory limit: whether the
// exception in flight is a std::bad_alloc (or derived).
bool current_exception_is_bad_alloc() noexcept;

}  // namespace procpool::detail
