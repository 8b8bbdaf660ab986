// SPDX-License-Identifier: MIT
#pragma once
// A worker on the CPU of the host thread that calls it, with that CPU
// contended, leaves it: to spin on elsewhere (StepAside), or to sleep where
// its wake-up will not preempt the host (SleepAway).
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
//
// Within that interval a worker that must end its spin sleeps instead, and
// the same cycle hurt a burst of calls: the host thread, submitting, woke
// the worker onto its own CPU, where the wakee preempted it (a woken thread
// runs ahead of a running one); the worker served the call or two in its
// ring, yielded back, slept, and was woken onto that CPU again. 100,000
// no-ops submitted then awaited saw the submitting thread preempted 3,000 to
// 7,000 times. So such a worker sleeps with the host's CPU left out of its
// set (the wake places it on another of its CPUs, where it preempts no
// host), and takes its set back once awake: 1,200 to 1,500 preemptions
// under perf, and the worker, now beside the host rather than on its CPU,
// spins on instead of sleeping again. Only in a burst (the worker's last sleep was short):
// a host that sent a single call waits for the answer, and the wake-up on
// its CPU costs it nothing, where an idle CPU may take longer to wake.
#include <sched.h>

#include <chrono>

namespace procpool::detail {

// Sets this process's CPUs to its own set without `cpu`, which migrates it
// off `cpu` before the call returns; `own` gets the set as it was. False,
// with nothing changed, where `cpu` is not in the set or is its only CPU,
// or the call fails.
inline bool leave_cpu(int cpu, cpu_set_t& own) noexcept {
  if (cpu < 0 || ::sched_getaffinity(0, sizeof own, &own) != 0 || !CPU_ISSET(cpu, &own)) return false;
  cpu_set_t others = own;
  CPU_CLR(cpu, &others);
  if (CPU_COUNT(&others) == 0) return false;
  return ::sched_setaffinity(0, sizeof others, &others) == 0;
}

class StepAside {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr auto kInterval = std::chrono::milliseconds(100);

  // True if this process now runs on a CPU other than `host_cpu`, its set
  // of CPUs as it was.
  bool away_from(int host_cpu, Clock::time_point now) noexcept {
    if (now < next_try_) return false;
    next_try_ = now + kInterval;
    cpu_set_t own;
    if (!leave_cpu(host_cpu, own)) return false;
    (void)::sched_setaffinity(0, sizeof own, &own);  // as it was; it fails only where the first did
    return ::sched_getcpu() != host_cpu;
  }

 private:
  Clock::time_point next_try_{};
};

// For a sleep: while it lives, this process may not run on `host_cpu`
// (unless that is its only CPU), so that the wake-up places it elsewhere;
// then its set of CPUs is as it was.
class SleepAway {
 public:
  explicit SleepAway(int host_cpu) noexcept : moved_(leave_cpu(host_cpu, own_)) {}
  ~SleepAway() {
    if (moved_) (void)::sched_setaffinity(0, sizeof own_, &own_);
  }
  SleepAway(const SleepAway&) = delete;
  SleepAway& operator=(const SleepAway&) = delete;
  bool moved() const noexcept { return moved_; }

 private:
  cpu_set_t own_;
  bool moved_;
};

}  // namespace procpool::detail
