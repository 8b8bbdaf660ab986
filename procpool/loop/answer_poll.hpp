// SPDX-License-Identifier: MIT
#pragma once
// A waiting thread's poll of its pools' response rings, shared by a
// Future's wait and the completion queue's (as_completed, futures::wait):
// an answer it drains itself costs the waiter a µs or so, one it sleeps
// through costs a worker -> reactor -> waiter relay of two wake-ups (tens
// of µs).
#include <chrono>

#include <procpool/common/cpu_yield.hpp>

namespace procpool::detail {

// A hot worker answers within a µs or two: a waiter that need not give its
// CPU away polls without yielding for this long.
inline constexpr std::chrono::microseconds kEagerPoll{2};

// Calls poll_once() (true: it took answers) until done() or `until`. From
// `yields_from` on, each poll is followed by a yield of the CPU (a worker
// that was asleep may need this one to wake up on), and a slow yield, a
// sign of a contended CPU, ends the poll. The clock is read only between
// polls that left done() false: an answer's way back to the caller has no
// clock read on it. Returns whether any poll took answers.
template <class PollOnce, class Done>
bool poll_answers_until(std::chrono::steady_clock::time_point until, std::chrono::steady_clock::time_point yields_from,
                        PollOnce&& poll_once, Done&& done) {
  bool took = false;
  CpuYield& cpu = CpuYield::this_thread();
  while (!done()) {
    took |= poll_once();
    if (done()) break;
    auto now = std::chrono::steady_clock::now();
    if (now >= until) break;
    if (now > yields_from && !cpu.between_polls(now)) break;
  }
  return took;
}

}  // namespace procpool::detail
