// SPDX-License-Identifier: MIT
#include <procpool/loop/completion_queue.hpp>

#include <algorithm>
#include <string>

#include <procpool/common/errors.hpp>

namespace procpool::detail {

std::shared_ptr<CompletionQueue> CompletionQueue::watch(const std::vector<std::shared_ptr<StateBase>>& states) {
  std::vector<std::weak_ptr<Poller>> pollers;
  std::vector<const Poller*> seen;
  for (auto& s : states) {
    if (!s) throw_no_state();
    if (auto p = s->poller(); p && std::find(seen.begin(), seen.end(), p.get()) == seen.end()) {
      seen.push_back(p.get());
      pollers.push_back(p);
    }
  }
  std::shared_ptr<CompletionQueue> queue(new CompletionQueue(std::move(pollers)));
  // The callbacks hold the queue, not the other way round: it lives until
  // the last watched state has settled or gone, whoever stopped reading.
  for (size_t i = 0; i < states.size(); ++i) states[i]->on_ready_anywhere([queue, i] { queue->settled(i); });
  return queue;
}

void CompletionQueue::settled(size_t index) {
  std::shared_ptr<StateBase> arrival;
  {
    std::lock_guard lock(mutex_);
    settled_.push_back(index);
    arrival = std::move(arrival_);
  }
  settled_cv_.notify_all();
  // Made ready with no lock held: its callbacks (a coroutine's resumption,
  // posted to its loop) run here.
  if (arrival && arrival->try_claim()) arrival->publish();
}

std::optional<size_t> CompletionQueue::take() {
  std::lock_guard lock(mutex_);
  return pop_locked();
}

std::optional<size_t> CompletionQueue::pop_locked() {
  if (settled_.empty()) return std::nullopt;
  size_t i = settled_.front();
  settled_.pop_front();
  return i;
}

std::optional<size_t> CompletionQueue::take_until(Clock::time_point deadline, const char* what) {
  std::unique_lock lock(mutex_);
  if (settled_.empty() && deadline > Clock::now()) {
    refuse_to_block(what);
    auto some = [&] { return !settled_.empty(); };
    if (deadline == Clock::time_point::max()) settled_cv_.wait(lock, some);
    else settled_cv_.wait_until(lock, deadline, some);
  }
  return pop_locked();
}

std::shared_ptr<StateBase> CompletionQueue::arrival() {
  auto ready_now = [] {
    auto s = std::make_shared<SharedState<void>>();
    (void)s->try_claim();
    s->publish();
    return s;
  };
  std::lock_guard lock(mutex_);
  if (!settled_.empty()) return ready_now();
  if (!arrival_) arrival_ = std::make_shared<SharedState<void>>();
  return arrival_;
}

void CompletionQueue::refuse_to_block(const char* what) const {
  for (auto& weak : pollers_)
    if (auto p = weak.lock()) refuse_blocking_wait(*p, what);  // (a pool gone has settled all its calls)
}

}  // namespace procpool::detail
