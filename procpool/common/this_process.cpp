// SPDX-License-Identifier: MIT
#include <procpool/common/this_process.hpp>

#include <pthread.h>
#include <unistd.h>

#include <atomic>

namespace procpool::detail {
namespace {

// 0 until known. Relaxed: each thread reads either 0 (and asks the kernel)
// or the pid some thread of this process stored; in a child, the handler
// runs on its only thread before fork() returns there.
std::atomic<pid_t> g_pid{0};

void forget_pid() noexcept { g_pid.store(0, std::memory_order_relaxed); }

}  // namespace

pid_t this_process() noexcept {
  pid_t pid = g_pid.load(std::memory_order_relaxed);
  if (pid != 0) [[likely]]
    return pid;
  // Installed before the first value is kept: a fork after this can only
  // find the handler in place.
  static const bool forgets = ::pthread_atfork(nullptr, nullptr, forget_pid) == 0;
  pid = ::getpid();
  if (forgets) g_pid.store(pid, std::memory_order_relaxed);
  return pid;
}

}  // namespace procpool::detail
