// SPDX-License-Identifier: MIT
#pragma once
// StartMethod::spawn: each worker is a fresh exec of a program that calls
// procpool::init(argc, argv) first thing in main; init() finds the
// bootstrap socket named in the environment, reads its launch message
// (launch.hpp) from it, and becomes the worker.
#include <sys/types.h>

#include <string>

namespace procpool::detail {

class WorkerSegment;
struct WorkerConfig;

// Set in a spawned worker's environment (and removed by init() there):
// the descriptor of its bootstrap socket.
inline constexpr const char kSpawnChannelVariable[] = "PROCPOOL_WORKER_CHANNEL";

// posix_spawn of `program` (this program: "/proc/self/exe") as a worker
// serving `segment` (a memfd segment), in a process group of its own, all
// signals at their defaults and blocked until it has set itself up; sends
// it its launch message. Throws procpool::Error naming the cause.
pid_t exec_worker(const WorkerConfig& config, const WorkerSegment& segment, const std::string& program,
                  const std::string& argv0);
// In the spawned process (init() calls it): never returns.
[[noreturn]] void become_spawned_worker(const char* channel) noexcept;

}  // namespace procpool::detail
