// SPDX-License-Identifier: MIT
#include <procpool/loop/completion_queue.hpp>

#include <algorithm>
#include <string>

#include <procpool/common/errors.hpp>
#include <procpool/common/this_process.hpp>

namespace procpool::detail {

std::shared_ptr<CompletionQueue> CompletionQueue::watch(const std::vector<std::shared_ptr<StateBase>>& states) {
  std::vector<std::weak_ptr<Poller>> pollers;
  std::vector<const Poller*> seen;
  for (auto& s : states) {
    if (!s) throw Error("waiting on a Future with no call (default-constructed, or moved from)");
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
  if (settled_.empty()) return std::nullopt;
  size_t i = settled_.front();
  settled_.pop_front();
  return i;
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
  for (auto& weak : pollers_) {
    auto p = weak.lock();
    if (!p) continue;  // that pool is gone: its calls have all settled
    if (p->in_another_process())
      throw Error(std::string(what) + " in process " + std::to_string(this_process()) + ", forked from process " +
                  std::to_string(p->owner_process()) +
                  " after its calls were sent: their answers can only arrive in that process");
    if (p->on_own_thread())
      throw Error(std::string(what) +
                  " on the pool's own thread (a then() callback or a coroutine the pool resumed) would deadlock: "
                  "co_await procpool::wait or procpool::as_completed instead");
  }
}

}  // namespace procpool::detail
