// SPDX-License-Identifier: MIT
#pragma once
// The order in which a set of futures settle, for as_completed (the
// coroutine one and the blocking one) and the blocking wait. One callback
// per future, registered once: each next() costs O(1), not a look at every
// future still pending (an as_completed of n futures registered n - k
// callbacks at its k-th step, n²/2 in all).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_set>
#include <vector>

#include <procpool/loop/future_state.hpp>

namespace procpool::detail {

class CompletionQueue : public std::enable_shared_from_this<CompletionQueue> {
 public:
  using Clock = std::chrono::steady_clock;

  // Watches `states`: the index of each goes into the queue as it settles
  // (at once for one already settled), on the settling thread. Throws
  // procpool::Error for a null one (a Future with no call).
  static std::shared_ptr<CompletionQueue> watch(const std::vector<std::shared_ptr<StateBase>>& states);

  // The index of a state that settled and was not taken yet, oldest first.
  std::optional<size_t> take();
  // The same, waiting until `deadline` (time_point::max(): no limit); none
  // if it passed first. Throws procpool::Error instead of blocking where
  // a wait would never end: on the pool's own thread (its answers are
  // published there), or in a process a pool was forked into. `what`
  // names the caller, for that error.
  std::optional<size_t> take_until(Clock::time_point deadline, const char* what);
  // A state that becomes ready once an index can be taken (already ready if
  // one can now): what a coroutine awaits between two take()s.
  std::shared_ptr<StateBase> arrival();

 private:
  explicit CompletionQueue(std::vector<std::weak_ptr<Poller>> pollers) : pollers_(std::move(pollers)) {}
  void settled(size_t index);
  std::optional<size_t> pop_locked();  // mutex_ held
  void refuse_to_block(const char* what) const;
  // Polls the pools' response rings until an index can be taken, for as
  // long as they let a waiter poll (not past `deadline`). mutex_ not held.
  void poll_for_a_while(Clock::time_point deadline);

  std::vector<std::weak_ptr<Poller>> pollers_;  // of the watched states' pools, each once
  std::mutex mutex_;
  std::condition_variable settled_cv_;
  std::deque<size_t> settled_;  // guarded by mutex_
  // !settled_.empty(), written under mutex_: lets a polling thread see an
  // arrival without the lock. Relaxed: only a hint to stop polling;
  // take_until reads settled_ itself under the lock.
  std::atomic<bool> any_settled_{false};
  std::shared_ptr<StateBase> arrival_;  // guarded by mutex_: made ready by the next settlement
};

// Futures handed back in the order they settle: both as_completed share
// it. A future given more than once is handed back once, at its first place.
template <class Future>
class CompletionOrder {
 public:
  explicit CompletionOrder(std::vector<Future> futures) {
    std::vector<std::shared_ptr<StateBase>> states;
    std::unordered_set<const StateBase*> seen;
    for (auto& f : futures) {
      auto state = f.shared_state();
      if (!seen.insert(state.get()).second) continue;
      states.push_back(std::move(state));
      futures_.push_back(std::move(f));
    }
    left_ = futures_.size();
    queue_ = CompletionQueue::watch(states);
  }
  size_t size() const noexcept { return left_; }
  // A settled future not handed back yet, if there is one.
  std::optional<Future> take() { return hand_back(queue_->take()); }
  std::optional<Future> take_until(CompletionQueue::Clock::time_point deadline, const char* what) {
    return hand_back(queue_->take_until(deadline, what));
  }
  std::shared_ptr<StateBase> arrival() { return queue_->arrival(); }

 private:
  std::optional<Future> hand_back(std::optional<size_t> i) {
    if (!i) return std::nullopt;
    --left_;
    return std::move(futures_[*i]);
  }
  std::vector<Future> futures_;  // in the order given; one handed back is left moved-from
  size_t left_ = 0;
  std::shared_ptr<CompletionQueue> queue_;
};

}  // namespace procpool::detail
