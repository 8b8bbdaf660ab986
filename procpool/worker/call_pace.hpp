// SPDX-License-Identifier: MIT
#pragma once
// The worker's side of ControlBlock::call_ns, its recent time per call,
// which paces how many calls the host hands it ahead (loop/dispatch.cpp),
// and of ControlBlock::call_began_ns, when its latest call began, by which
// the host sees a call run long with calls queued behind it
// (loop/work_stealing.cpp).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace procpool::detail {

// One clock read per call while calls queue up back to back: a call's time
// is from its start to the next one's, counted only when the next was
// already waiting, so no idle time is in it. A call that found the ring
// empty is timed from the end of its wait.
class CallPace {
 public:
  using Clock = std::chrono::steady_clock;
  CallPace(std::atomic<uint32_t>& call_ns, std::atomic<uint64_t>& call_began_ns) noexcept
      : call_ns_(call_ns), call_began_ns_(call_began_ns) {}

  // A call begins; the one before it ended just now with this one waiting.
  void next_was_waiting() noexcept {
    auto now = Clock::now();
    if (began_ != Clock::time_point{}) {
      auto gap = std::chrono::duration_cast<std::chrono::nanoseconds>(now - began_).count();
      auto sample = static_cast<uint32_t>(std::clamp<int64_t>(gap, 1, UINT32_MAX));
      // Relaxed: a hint the host reads as such (worker_segment.hpp).
      uint32_t recent = call_ns_.load(std::memory_order_relaxed);
      // Up at once, down by an eighth: a burst of short calls after long
      // ones earns a deep queue only once it has lasted.
      call_ns_.store(sample >= recent ? sample : recent - (recent - sample) / 8, std::memory_order_relaxed);
    }
    begin(now);
  }
  // A call begins after the worker waited for it.
  void begins_after_a_wait() noexcept { begin(Clock::now()); }

 private:
  void begin(Clock::time_point now) noexcept {
    began_ = now;
    // Relaxed: `started`'s release store, which follows, publishes it.
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
    call_began_ns_.store(static_cast<uint64_t>(ns), std::memory_order_relaxed);
  }

  std::atomic<uint32_t>& call_ns_;
  std::atomic<uint64_t>& call_began_ns_;
  Clock::time_point began_{};  // when the call being served began, if known
};

}  // namespace procpool::detail
