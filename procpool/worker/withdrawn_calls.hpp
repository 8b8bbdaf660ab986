// SPDX-License-Identifier: MIT
#pragma once
// The worker's side of its CancelList (common/worker_segment.hpp): whether
// the call it is about to begin was withdrawn by the host.
#include <cstddef>
#include <cstdint>

#include <procpool/common/frame.hpp>
#include <procpool/common/worker_segment.hpp>

namespace procpool::detail {

// Reads each entry of the list once, into its own copy of the ids not yet
// matched, so that a call costs one load of `count` while nothing new was
// withdrawn, however many withdrawals came before: a queue of hundreds of
// calls (a paced prefetch) can be withdrawn whole, and the calls after it do
// not scan the list.
//
// The host keeps an entry among the last kCancelSlots until its call is
// answered (loop/cancel.cpp), so an entry pushed out of the list before it
// was read here is of a call already answered: forgetting it loses nothing.
// A slot the host overwrote after this look's load of `count` gives a newer
// entry's id, at most kCancelSlots entries early; it is read again in its
// own turn, and its copies only wait to be matched or dropped. So the copy
// holds twice kCancelSlots ids, in the order of the slots they were read
// from, and drops the oldest when full: that id's entry is at most
// kCancelSlots newer than its slot, and the entry that pushes it out is at
// least 2 kCancelSlots newer than the slot, so its call was answered.
// Task ids are never reused, so a stale copy matches no later call.
class WithdrawnCalls {
 public:
  explicit WithdrawnCalls(const CancelList& list) noexcept : list_(list) {}

  // Called once per call, after its `started` is stored (the acquire here
  // is the worker's look of cancel.cpp's proof). True: skip it.
  bool take(TaskId task) noexcept {
    uint32_t count = list_.count.load(std::memory_order_acquire);
    uint32_t first = count - read_ > kCancelSlots ? count - kCancelSlots : read_;
    for (uint32_t i = first; i != count; ++i) remember(list_.ids[i % kCancelSlots].load(std::memory_order_relaxed));
    read_ = count;
    for (size_t i = 0; i < held_; ++i) {
      if (ids_[i] != task) continue;
      drop(i);
      return true;
    }
    return false;
  }

 private:
  void remember(TaskId id) noexcept {
    if (held_ == kHeld) drop(0);  // the oldest: see the class comment
    ids_[held_++] = id;
  }
  void drop(size_t i) noexcept {
    for (size_t j = i + 1; j < held_; ++j) ids_[j - 1] = ids_[j];  // kept in the order they were appended
    --held_;
  }

  static constexpr size_t kHeld = 2 * size_t{kCancelSlots};
  const CancelList& list_;
  uint32_t read_ = 0;  // entries read so far (list_.count when last looked)
  size_t held_ = 0;
  TaskId ids_[kHeld];
};

}  // namespace procpool::detail
