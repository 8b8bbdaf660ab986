// SPDX-License-Identifier: MIT
#include "fault_plan.hpp"

#include <cmath>

namespace soak {

const char* to_string(Kind kind) noexcept {
  switch (kind) {
    case Kind::none:
      return "none";
    case Kind::plain:
      return "plain";
    case Kind::plain_deadline:
      return "plain under a deadline";
    case Kind::throws:
      return "throws";
    case Kind::segv:
      return "segv";
    case Kind::abort:
      return "abort";
    case Kind::exit3:
      return "_exit(3)";
    case Kind::sigkill:
      return "SIGKILL from outside";
    case Kind::sigstop:
      return "SIGSTOP from outside";
    case Kind::deadline:
      return "deadline";
    case Kind::cancel_queued:
      return "cancel queued";
    case Kind::cancel_running:
      return "cancel running";
    case Kind::text_payload:
      return "text payload";
    case Kind::shared_payload:
      return "SharedBytes payload";
    case Kind::map_item:
      return "map item";
    case Kind::forged_frames:
      return "forged frames";
    case Kind::count_:
      break;
  }
  return "?";
}

const char* to_string(Outcome outcome) noexcept {
  switch (outcome) {
    case Outcome::none:
      return "unsettled";
    case Outcome::value:
      return "value";
    case Outcome::raised:
      return "runtime_error";
    case Outcome::crashed_segv:
      return "WorkerCrashed by SIGSEGV";
    case Outcome::crashed_abort:
      return "WorkerCrashed by SIGABRT";
    case Outcome::crashed_exit3:
      return "WorkerCrashed with exit code 3";
    case Outcome::crashed_kill:
      return "WorkerCrashed by SIGKILL";
    case Outcome::timed_out:
      return "TaskTimeout";
    case Outcome::cancelled:
      return "TaskCancelled";
    case Outcome::protocol_error:
      return "ProtocolError";
    case Outcome::wrong:
      return "a wrong outcome";
    case Outcome::count_:
      break;
  }
  return "?";
}

Outcome expected_outcome(Kind kind) noexcept {
  switch (kind) {
    case Kind::throws:
      return Outcome::raised;
    case Kind::segv:
      return Outcome::crashed_segv;
    case Kind::abort:
      return Outcome::crashed_abort;
    case Kind::exit3:
      return Outcome::crashed_exit3;
    case Kind::sigkill:
      return Outcome::crashed_kill;
    case Kind::sigstop:
    case Kind::deadline:
      return Outcome::timed_out;
    case Kind::cancel_queued:
    case Kind::cancel_running:
      return Outcome::cancelled;
    case Kind::forged_frames:
      return Outcome::protocol_error;
    default:
      return Outcome::value;
  }
}

Draw FaultPlan::draw() {
  // Parts per 100,000, cumulated in this order.
  struct Rate {
    Kind kind;
    uint32_t per_100k;
  };
  static constexpr Rate kRates[] = {
      {Kind::segv, 250},
      {Kind::abort, 200},
      {Kind::exit3, 200},
      {Kind::sigkill, 200},
      {Kind::sigstop, 150},
      {Kind::throws, 500},
      {Kind::deadline, 200},
      {Kind::cancel_queued, 200},
      {Kind::cancel_running, 100},
      {Kind::text_payload, 250},
      {Kind::shared_payload, 250},
      {Kind::map_item, 150},
      {Kind::plain_deadline, 1000},
  };
  static_assert([] {
    uint32_t sum = 0;
    for (const Rate& rate : kRates) sum += rate.per_100k;
    return sum == kFixedFaultsPer100k;
  }());
  uint32_t roll = std::uniform_int_distribution<uint32_t>(0, 99'999)(rng_);
  Draw d;
  if (roll >= kFixedFaultsPer100k) {
    if (roll - kFixedFaultsPer100k < forged_per_100k_) d.kind = Kind::forged_frames;
  } else {
    for (const Rate& rate : kRates) {
      if (roll < rate.per_100k) {
        d.kind = rate.kind;
        break;
      }
      roll -= rate.per_100k;
    }
  }
  auto between = [this](uint32_t lo, uint32_t hi) { return std::uniform_int_distribution<uint32_t>(lo, hi)(rng_); };
  switch (d.kind) {
    case Kind::plain_deadline:
      d.timeout_ms = 30'000;
      break;
    case Kind::sigstop:
      d.timeout_ms = between(60, 150);
      break;
    case Kind::deadline:
      d.timeout_ms = between(2, 40);
      break;
    case Kind::text_payload:
    case Kind::shared_payload: {
      // Log-uniform from 64 B to 8 MiB.
      double exponent = std::uniform_real_distribution<double>(6.0, 23.0)(rng_);
      d.payload = static_cast<uint64_t>(std::exp2(exponent));
      break;
    }
    case Kind::map_item:
      d.ids = between(8, 128);
      d.chunksize = between(0, 3) == 0 ? 0 : between(1, 32);
      break;
    default:
      break;
  }
  return d;
}

Draw FaultPlan::draw_for_loop() {
  Draw d = draw();
  if (d.kind == Kind::map_item || d.kind == Kind::text_payload || d.kind == Kind::shared_payload) d = Draw{};
  return d;
}

}  // namespace soak
