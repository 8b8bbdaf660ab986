// SPDX-License-Identifier: MIT
#pragma once
// The host's record of every call id: what it was made to do, how its future
// settled and how often, what cancel() said; and the check, once an epoch's
// pool is gone, that each issued call settled exactly once with the outcome
// its kind implies and ran at most (or exactly) once.
#include <array>
#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>

#include "fault_plan.hpp"
#include "violations.hpp"

namespace soak {

class RunLedger;

// What the check of an epoch found.
struct EpochFindings {
  uint64_t issued = 0;
  uint64_t ran_twice = 0;
  uint64_t lost = 0;  // issued, never settled
  uint64_t settled_twice = 0;
};

class CallBook {
 public:
  CallBook(size_t capacity, Violations& violations);

  // Ids of the coming epoch: [begin, end).
  void open_epoch(uint32_t begin, uint32_t end, bool cancel_futures);
  // Stops every later claim (--seconds ran out).
  void stop() noexcept { stopped_.store(true, std::memory_order_relaxed); }
  bool stopped() const noexcept { return stopped_.load(std::memory_order_relaxed); }
  // `count` consecutive ids of this epoch, or nothing once it is used up.
  std::optional<uint32_t> claim(uint32_t count) noexcept;
  // Ids claimed so far (for progress).
  uint64_t claimed() const noexcept;

  void issue(uint32_t id, Kind kind) noexcept { kinds_[id] = kind; }
  void note_cancel(uint32_t id, bool cancelled) noexcept { cancel_said_[id].store(cancelled ? 1 : 2); }
  // Classifies a settled future's error (null: a value, `value_ok` saying
  // whether it was the expected one) and records the settlement.
  void settle(uint32_t id, const std::exception_ptr& error, bool value_ok, const std::string& value_note = {});
  // Wrong value seen later (by a coroutine that awaited the future).
  void wrong_value(uint32_t id, const std::string& note);

  // Waits (up to `patience_ms`) for every issued id of the epoch to settle,
  // then checks them against the ledger.
  EpochFindings check_epoch(const RunLedger& ledger, int patience_ms);

  uint64_t outcome_count(Outcome o) const noexcept { return outcomes_[static_cast<size_t>(o)].load(); }
  uint64_t kind_count(Kind k) const noexcept { return kind_counts_[static_cast<size_t>(k)]; }
  // Frames the forged_frames calls wrote (forged_frame_count of each).
  uint64_t forged_frames() const noexcept { return forged_frames_; }
  uint64_t cancels_true() const noexcept { return cancels_true_; }
  uint64_t cancels_false() const noexcept { return cancels_false_; }

 private:
  Outcome classify(uint32_t id, const std::exception_ptr& error, std::string& text) const;
  bool acceptable(uint32_t id, Outcome outcome) const noexcept;

  size_t capacity_;
  Violations& violations_;
  std::unique_ptr<Kind[]> kinds_;
  std::unique_ptr<Outcome[]> outcomes_of_;
  std::unique_ptr<std::atomic<uint8_t>[]> settles_;
  std::unique_ptr<std::atomic<uint8_t>[]> cancel_said_;  // 0 not asked, 1 true, 2 false
  std::atomic<uint64_t> next_{0};
  uint32_t begin_ = 0;
  std::atomic<uint32_t> end_{0};  // read by the claiming threads
  bool cancel_futures_ = false;
  std::atomic<bool> stopped_{false};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(Outcome::count_)> outcomes_{};
  std::array<uint64_t, static_cast<size_t>(Kind::count_)> kind_counts_{};
  uint64_t forged_frames_ = 0;
  uint64_t cancels_true_ = 0, cancels_false_ = 0;
};

}  // namespace soak
