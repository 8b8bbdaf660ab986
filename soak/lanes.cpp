// SPDX-License-Identifier: MIT
#include "lanes.hpp"

#include <string>
#include <utility>
#include <vector>

#include <procpool/procpool.hpp>

#include "call_book.hpp"
#include "call_maker.hpp"
#include "fault_plan.hpp"

namespace soak {
namespace {

constexpr size_t kLoopBatch = 32;

procpool::Task<void> drive(procpool::EventLoop& loop, CallBook& book, CallMaker& maker, FaultPlan plan) {
  for (;;) {
    std::vector<std::pair<uint32_t, procpool::Future<uint64_t>>> batch;
    while (batch.size() < kLoopBatch) {
      Draw draw = plan.draw_for_loop();
      auto id = book.claim(1);
      if (!id) break;
      batch.emplace_back(*id, maker.make_in_loop(loop, draw, *id));
    }
    if (batch.empty()) co_return;
    for (auto& [id, future] : batch) {
      try {
        uint64_t value = co_await future;
        if (value != expected_value(id)) book.wrong_value(id, "co_await gave " + std::to_string(value));
      } catch (const std::exception&) {
        // Its then() callback classified the error.
      }
    }
  }
}

}  // namespace

void run_thread_lane(CallBook& book, CallMaker& maker, std::counting_semaphore<>& window, FaultPlan plan,
                     Violations& violations) {
  for (;;) {
    Draw draw = plan.draw();
    auto id = book.claim(draw.ids);
    if (!id) return;
    window.acquire();
    try {
      maker.make(draw, *id, [&window] { window.release(); });
    } catch (const std::exception& e) {
      violations.add("submitting call " + std::to_string(*id) + " (" + to_string(draw.kind) + ") threw: " + e.what());
      window.release();
    }
  }
}

void run_loop_lane(CallBook& book, CallMaker& maker, FaultPlan plan, Violations& violations) {
  try {
    procpool::EventLoop loop;
    loop.run_until_complete(drive(loop, book, maker, plan));
  } catch (const std::exception& e) {
    violations.add(std::string("the event loop's lane ended with: ") + e.what());
  }
}

}  // namespace soak
