// SPDX-License-Identifier: MIT
#include <procpool/loop/backpressure.hpp>

#include <algorithm>

#include <procpool/common/errors.hpp>
#include <procpool/loop/future_state.hpp>
#include <procpool/loop/pool_core.hpp>

namespace procpool::detail {

size_t Backpressure::held() const {
  std::lock_guard lock(mutex_);
  return held_;
}

Backpressure::Outcome Backpressure::try_acquire() {
  std::lock_guard lock(mutex_);
  if (closed_) return Outcome::Closed;
  if (!queue_.empty() || held_ >= limit_) return Outcome::Full;
  ++held_;
  return Outcome::Admitted;
}

Backpressure::Outcome Backpressure::acquire() {
  auto waiter = std::make_shared<Waiter>();
  std::unique_lock lock(mutex_);
  if (Outcome now = acquire_or_queue_locked(waiter); now != Outcome::Full) return now;
  room_.wait(lock, [&] { return waiter->decided; });
  return waiter->admitted ? Outcome::Admitted : Outcome::Closed;
}

Backpressure::Outcome Backpressure::acquire_over_bound() {
  std::lock_guard lock(mutex_);
  if (closed_) return Outcome::Closed;
  ++held_;
  return Outcome::Admitted;
}

Backpressure::Outcome Backpressure::acquire_or_queue(const std::shared_ptr<Waiter>& waiter) {
  std::lock_guard lock(mutex_);
  return acquire_or_queue_locked(waiter);
}

Backpressure::Outcome Backpressure::acquire_or_queue_locked(const std::shared_ptr<Waiter>& waiter) {
  if (closed_) return Outcome::Closed;
  if (queue_.empty() && held_ < limit_) {
    ++held_;
    return Outcome::Admitted;
  }
  queue_.push_back(waiter);
  return Outcome::Full;
}

Backpressure::Outcome Backpressure::withdraw(const std::shared_ptr<Waiter>& waiter) {
  std::lock_guard lock(mutex_);
  if (waiter->decided) return waiter->admitted ? Outcome::Admitted : Outcome::Closed;
  queue_.erase(std::remove(queue_.begin(), queue_.end(), waiter), queue_.end());
  waiter->decided = true;
  return Outcome::Full;
}

std::function<void(bool)> Backpressure::hand_over_locked() {
  std::shared_ptr<Waiter> first = std::move(queue_.front());
  queue_.pop_front();
  first->decided = first->admitted = true;  // the place is the waiter's: held_ is unchanged
  if (!first->grant) room_.notify_all();    // a blocked thread; the others find theirs undecided
  return std::move(first->grant);
}

namespace {
// A release running on this thread: the grant it calls may settle its call
// at once (a refusal, an arguments' encoding failure), and that releases
// again, from inside. Such a nested release only counts the place, and the
// outermost one hands it on: a queue of many such waiters (a large map's
// chunks) costs a loop, not a stack frame each.
struct ReleaseFrame {
  const Backpressure* room;
  size_t owed;
  ReleaseFrame* outer;
};
thread_local ReleaseFrame* t_releasing = nullptr;
}  // namespace

void Backpressure::release() noexcept {
  for (ReleaseFrame* f = t_releasing; f; f = f->outer)
    if (f->room == this) {
      ++f->owed;
      return;
    }
  ReleaseFrame frame{this, 1, t_releasing};
  t_releasing = &frame;
  while (frame.owed > 0) {
    --frame.owed;
    std::function<void(bool)> grant;
    {
      std::lock_guard lock(mutex_);
      if (queue_.empty()) {
        --held_;
        continue;
      }
      grant = hand_over_locked();
    }
    // With no lock held: a grant posts to a loop, or submits (and may release).
    if (grant) {
      try {
        grant(true);
      } catch (...) {
        ++frame.owed;  // out of memory posting the resumption: the place goes back
      }
    }
  }
  t_releasing = frame.outer;
}

void Backpressure::release_when_settled(StateBase& state) {
  try {
    // Before the state is ready: once a get() returns, its place is free.
    state.before_ready([self = shared_from_this()] { self->release(); });
  } catch (...) {
    release();  // out of memory: the call is not submitted, its place goes back
    throw;
  }
}

void Backpressure::close() {
  std::deque<std::shared_ptr<Waiter>> refused;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    refused.swap(queue_);
    for (auto& w : refused) w->decided = true;  // admitted stays false
  }
  room_.notify_all();
  for (auto& w : refused)
    if (w->grant) {
      try {
        w->grant(false);
      } catch (...) {
        // Out of memory posting a refusal: that waiter's loop is resumed by
        // its own destruction or cancellation; nothing is held.
      }
    }
}

bool PoolCore::admit(StateBase& state, uint32_t function_id, Admission admission) {
  if (admission == Admission::Reserved) return true;  // its place is tied to the state already
  Backpressure& room = *backpressure_;
  using Outcome = Backpressure::Outcome;
  Outcome got = admission == Admission::Try ? room.try_acquire()
                : on_own_thread()           ? room.acquire_over_bound()  // it cannot wait for itself
                                            : room.acquire();
  if (got == Outcome::Closed) {
    state.settle_error(std::make_exception_ptr(PoolShutdown("the pool is shut down; no new calls are accepted")));
    return false;
  }
  if (got == Outcome::Full) {
    state.settle_error(std::make_exception_ptr(PoolFull(room.held() + 1, room.limit(), function_name(function_id))));
    return false;
  }
  room.release_when_settled(state);
  return true;
}

}  // namespace procpool::detail
