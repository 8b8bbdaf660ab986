// SPDX-License-Identifier: MIT
#pragma once
// Submits one draw of the fault plan to the pool (from a submitting thread,
// or from the event loop with run_in_executor), records its kind, and
// attaches the Future::then callback that classifies and counts its
// settlement; hands outside faults to the OutsideHand.
#include <cstdint>
#include <functional>

#include <procpool/procpool.hpp>

#include "fault_plan.hpp"

namespace soak {

class CallBook;
class OutsideHand;

class CallMaker {
 public:
  CallMaker(procpool::ProcessPool& pool, CallBook& book, OutsideHand& hand) : pool_(pool), book_(book), hand_(hand) {}

  // Submits `draw` as ids [id, id + draw.ids); `settled` runs once, after
  // the settlement is recorded.
  void make(const Draw& draw, uint32_t id, std::function<void()> settled);
  // The event loop's call (soak_fault kinds only): the settlement is
  // recorded by then(), the value checked by whoever co_awaits it.
  procpool::Future<uint64_t> make_in_loop(procpool::EventLoop& loop, const Draw& draw, uint32_t id);

 private:
  void make_map(const Draw& draw, uint32_t id, std::function<void()> settled);
  // A payload kind: `task` checks and gives back `payload`, checked here.
  template <class Payload>
  void echo(Payload (*task)(uint32_t, Payload), uint32_t id, Payload payload, const char* note,
            std::function<void()> settled);
  // Outside faults and cancels of a soak_fault call.
  void after_submit(Kind kind, uint32_t id, procpool::Future<uint64_t> future);

  procpool::ProcessPool& pool_;
  CallBook& book_;
  OutsideHand& hand_;
};

// soak_fault's arguments for a kind.
int action_for(Kind kind) noexcept;
uint32_t sleep_ms_for(Kind kind) noexcept;
procpool::CallOptions options_for(const Draw& draw) noexcept;

}  // namespace soak
