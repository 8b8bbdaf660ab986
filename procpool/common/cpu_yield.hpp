// SPDX-License-Identifier: MIT
#pragma once
// sched_yield between the polls of a spin-wait, for as long as yielding is
// cheap.
//
// A worker and the host thread waiting on it often share a CPU (the
// scheduler wakes a worker on its waker's CPU): a spin that never yields
// keeps its partner off that CPU until the spin ends. So spins yield between
// polls. But when other programs' threads are runnable on the CPU, a yield
// hands one of them a slice (Linux's EEVDF pushes the yielder's deadline back
// by a whole slice, a millisecond or more), and every idle gap of a spin that
// yields becomes one: 100,000 no-op calls on this 2-core VM beside two
// compilers ran at 0.05 M/s with yields and 0.27 M/s without. A yield that
// kept the thread off its CPU for longer than kSlowYield says that the CPU
// is contended: the spin stops there, and for kNoYieldsFor this thread's
// spins stop where they would first yield. A futex sleep and wake then
// serves the partner (the scheduler puts a woken thread ahead of running
// ones), and a spin that went on without yields would keep a partner that
// shares the CPU off it for the rest of the spin (a 75 µs round trip where
// the yields made 1 µs). A worker whose host runs on another CPU has no such
// partner, and spins on (worker_loop.cpp, HostCpu).
#include <sched.h>

#include <chrono>

namespace procpool::detail {

class CpuYield {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr auto kSlowYield = std::chrono::microseconds(200);
  static constexpr auto kNoYieldsFor = std::chrono::milliseconds(100);

  // Called between polls at `now`: yields the CPU, and says whether the
  // spin may go on (false: a yield was slow, now or lately).
  bool between_polls(Clock::time_point now) noexcept {
    if (now < no_yields_until_) return false;
    // Timed from here, not from `now`: the caller's poll since then (it may
    // have settled a burst of answers) is not the yield's.
    auto before = Clock::now();
    sched_yield();
    auto back = Clock::now();
    if (back - before <= kSlowYield) return true;
    no_yields_until_ = back + kNoYieldsFor;
    return false;
  }

  // The thread's own: whether its CPU is contended is the thread's to learn.
  static CpuYield& this_thread() noexcept {
    thread_local CpuYield yield;
    return yield;
  }

 private:
  Clock::time_point no_yields_until_{};
};

}  // namespace procpool::detail
