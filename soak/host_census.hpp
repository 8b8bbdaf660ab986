// SPDX-License-Identifier: MIT
#pragma once
// What the host holds, read from /proc: open fds, threads, child processes
// (zombies included), /dev/shm names, resident memory.
#include <sys/types.h>

#include <cstdint>
#include <set>
#include <string>

namespace soak {

struct HostCensus {
  std::set<int> fds;
  size_t threads = 0;
  std::set<pid_t> children;
  std::set<pid_t> zombies;
  std::set<std::string> shm;

  static HostCensus take();
  // What `now` holds that `before` did not (fds, threads, children, shm),
  // or "" for nothing.
  static std::string leaks(const HostCensus& before, const HostCensus& now);
};

// Resident memory of this process, in bytes (/proc/self/statm).
uint64_t resident_bytes();

}  // namespace soak
