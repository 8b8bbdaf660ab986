// SPDX-License-Identifier: MIT
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>

#include <procpool/common/archive.hpp>
#include <procpool/common/resource_limits.hpp>

#include <procpool/common/worker_output.hpp>
#include <procpool/sandbox/sandbox.hpp>

namespace procpool::detail {

// What a worker needs to know, fixed when it is forked.
struct WorkerConfig {
  size_t max_message_bytes;
  // How long a worker polls its request ring after a task before it sleeps:
  // back-to-back calls then cost no wake-up, an idle worker costs no CPU.
  std::chrono::nanoseconds spin;
  int doorbell_fd;    // the host's eventfd
  int handle_socket;  // the worker's end of its SharedBytes channel
  bool close_fds;     // close every inherited fd but 0-2, the doorbell and the channel
  WorkerOutput output = WorkerOutput::inherit;
  // With WorkerOutput::capture: the write ends of the pipes the host reads,
  // made the worker's fds 1 and 2.
  int stdout_fd = -1;
  int stderr_fd = -1;

  // Workers' lives (worker_lives.hpp).
  uint64_t max_calls = 0;                   // PoolOptions::max_tasks_per_child; 0: no limit
  uint64_t max_rss = 0;                     // PoolOptions::max_worker_memory in bytes; 0: off
  const ByteBuffer* initializer = nullptr;  // the encoded call (the host's, inherited at fork); null: none
  ResourceLimits limits{};
  const Sandbox* sandbox = nullptr;  // the host's PoolOptions::sandbox, inherited at fork; null: none
  // clone(2) flags of PoolOptions::namespaces; 0: none. CLONE_NEWPID is
  // entered as the worker starts (enter_pid_namespace), the others after
  // its initializer (enter_namespaces).
  int namespace_flags = 0;
};

// Exit codes a worker uses for its own failures (a task's exit() is the
// task's business and reported as is).
inline constexpr int kExitSetupFailed = 121;
inline constexpr int kExitProtocol = 122;
// The worker can no longer reach the host (its doorbell or SharedBytes
// channel is gone: a task closed its descriptors). It exits once its answer
// is in the ring, and the pool replaces it.
inline constexpr int kExitLostHost = 123;
// The initializer threw (its exception is in ControlBlock::startup_error).
inline constexpr int kExitInitializerFailed = 120;
// The worker ends its own life after publishing a call's answer: it served
// max_tasks_per_child calls, or its RSS is over max_worker_memory. Neither
// is a crash; the host replaces it and counts it as a retirement.
inline constexpr int kExitServedItsCalls = 124;
inline constexpr int kExitOverMemory = 125;

}  // namespace procpool::detail
