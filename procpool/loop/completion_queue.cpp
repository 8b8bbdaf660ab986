// SPDX-License-Identifier: MIT
#include <procpool/loop/completion_queue.hpp>

#include <algorithm>
#include <string>

#include <procpool/loop/answer_poll.hpp>

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
    any_settled_.store(true, std::memory_order_relaxed);
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
  any_settled_.store(!settled_.empty(), std::memory_order_relaxed);
  return i;
}

std::optional<size_t> CompletionQueue::take_until(Clock::time_point deadline, const char* what) {
  {
    std::lock_guard lock(mutex_);
    if (!settled_.empty() || deadline <= Clock::now()) return pop_locked();
  }
  refuse_to_block(what);
  // Unlocked: an answer this thread drains settles its state here, and
  // settled() takes the lock.
  poll_for_a_while(deadline);
  std::unique_lock lock(mutex_);
  auto some = [&] { return !settled_.empty(); };
  if (deadline == Clock::time_point::max()) settled_cv_.wait(lock, some);
  else settled_cv_.wait_until(lock, deadline, some);
  return pop_locked();
}

void CompletionQueue::poll_for_a_while(Clock::time_point deadline) {
  // As a Future's wait polls its pool (StateBase::poll_for_a_while), but
  // any of the futures may settle next, so every pool they came from is
  // polled, each for as long as it would let a small call's waiter.
  std::vector<std::shared_ptr<Poller>> pools;
  Clock::duration budget{};
  for (auto& weak : pollers_) {
    auto p = weak.lock();
    if (!p) continue;  // gone: all its calls have settled
    auto b = p->poll_budget(0);
    if (b.count() == 0) continue;
    budget = std::max<Clock::duration>(budget, b);
    pools.push_back(std::move(p));
  }
  if (pools.empty()) return;
  auto start = Clock::now();
  std::deque<PollingScope> polling;  // destroyed before `pools`, which they name
  for (auto& p : pools) polling.emplace_back(*p);
  auto arrived = [this] { return any_settled_.load(std::memory_order_relaxed); };
  // Which call is next is not known, nor whether its worker slept: poll
  // eagerly as for a hot worker, then between yields.
  // Each pool is told whether polling paid off for it (it had answers),
  // so that one pool's long calls do not turn off the others' polling.
  std::vector<char> took(pools.size(), 0);
  poll_answers_until(
      std::min(deadline, start + budget), start + kEagerPoll,
      [&] {
        bool any = false;
        for (size_t i = 0; i < pools.size(); ++i)
          if (pools[i]->poll_responses()) {
            took[i] = 1;
            any = true;
          }
        return any;
      },
      arrived);
  if (arrived() || Clock::now() < deadline)
    for (size_t i = 0; i < pools.size(); ++i) pools[i]->polled(took[i] != 0);
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
