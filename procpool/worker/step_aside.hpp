// SPDX-License-Identifier: MIT
#pragma once
// A worker that finds itself on the CPU of the host thread that calls it,
// with that CPU contended, moves to another one of its CPUs.
//
// The scheduler wakes a sleeping worker on its waker's CPU when no CPU is
// idle. There, a spin would keep the waiting host thread off the CPU, so the
// spin ends (cpu_yield.hpp) and the worker sleeps again, to be woken on the
// same CPU for the next call: with other programs busy on every CPU, the hot
// round trip stayed at 12-16 µs, a futex wake and two context switches a
// call, while a worker that had stayed on the other CPU answered in about
// 1 µs. Moving away breaks the cycle: on another CPU the worker spins on
// without yields (HostCpu) and the next call finds it awake.
//
// The move is a pair of sched_setaffinity calls: the worker's own set of
// CPUs without the host's (the kernel migrates the caller before the call
// returns), then the set as it was, so that a set the user's initializer
// chose stands. At most once per kInterval: each try costs a few µs of
// system calls, and a scheduler that keeps pulling the worker back is better
// left to it than fought.
#include <sched.h>

#include <chrono>

namespace procpool::detail {

class StepAside {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr auto kInterval = std::chrono::milliseconds(100);

  // True if this process now runs on a CPU other than `host_cpu`.
  bool away_from(int host_cpu, Clock::time_point now) noexcept {
    if (now < next_try_) return false;
    next_try_ = now + kInterval;
    cpu_set_t own;
    if (::sched_getaffinity(0, sizeof own, &own) != 0 || !CPU_ISSET(host_cpu, &own)) return false;
    cpu_set_t others = own;
    CPU_CLR(host_cpu, &others);
    if (CPU_COUNT(&others) == 0) return false;  // the host's is its only CPU
    if (::sched_setaffinity(0, sizeof others, &others) != 0) return false;
    (void)::sched_setaffinity(0, sizeof own, &own);  // as it was; it fails only where the first did
    return ::sched_getcpu() != host_cpu;
  }

 private:
  Clock::time_point next_try_{};
};

}  // namespace procpool::detail
