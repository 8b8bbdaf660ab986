// SPDX-License-Identifier: MIT
#include <procpool/loop/future_state.hpp>

#include <sched.h>

#include <cstdio>
#include <ctime>

#include <procpool/common/cpu_relax.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/common/event_word.hpp>
#include <procpool/common/exception_codec.hpp>
#include <procpool/common/this_process.hpp>
#include <procpool/common/type_name.hpp>
#include <procpool/loop/answer_poll.hpp>

namespace procpool::detail {
namespace {
std::atomic<long> g_live_states{0};
}

StateBase::StateBase() noexcept { g_live_states.fetch_add(1, std::memory_order_relaxed); }
StateBase::~StateBase() { g_live_states.fetch_sub(1, std::memory_order_relaxed); }
long StateBase::live_count() noexcept { return g_live_states.load(std::memory_order_relaxed); }

std::exception_ptr StateBase::load_exception(InputArchive& in, const AnswerSource& from) {
  return decode_exception(in, from.function, from.pid, &origin_);
}

void throw_no_state() { throw Error("procpool::Future has no state (it was default-constructed or moved from)"); }

void throw_already_taken(const char* call) {
  throw Error(std::string("Future::") + call +
              ": the result was already taken by get(), which moves it out once (result() reads it in place, as "
              "often as asked)");
}

PollingScope::~PollingScope() {
  try {
    poller_.end_polling();
  } catch (const std::exception& e) {
    // Out of memory while publishing what it drained: nobody to tell here.
    std::fprintf(stderr, "procpool: ending a poll failed: %s\n", e.what());
  }
}

StateBase::SpinGuard::SpinGuard(std::atomic_flag& flag) noexcept : flag_(flag) {
  // Held for a push_back or a pointer swap: a few spins are enough, unless
  // the holder was preempted, and then only giving up the CPU lets it finish.
  for (int spins = 0; flag_.test_and_set(std::memory_order_acquire); ++spins) {
    if (spins < 64) cpu_relax();
    else sched_yield();
  }
}

bool StateBase::try_claim() noexcept {
  uint32_t seen = status_.load(std::memory_order_relaxed);
  while ((seen & kStage) == kPending)
    if (status_.compare_exchange_weak(seen, (seen & kWaiters) | kClaimed, std::memory_order_acq_rel,
                                      std::memory_order_relaxed))
      return true;
  return false;
}

void StateBase::publish() {
  if (has_first_) [[unlikely]] {
    Callbacks first;
    {
      SpinGuard guard(callbacks_lock_);
      first.swap(callbacks_->first);
    }
    run_each(first);
  }
  std::unique_ptr<CallbackLists> lists;
  uint32_t before;
  {
    SpinGuard guard(callbacks_lock_);
    // Release: the value or error written by the claimer is visible to whoever
    // loads kReady. The exchange also clears kWaiters: they are all woken now.
    before = status_.exchange(kReady, std::memory_order_acq_rel);
    lists.swap(callbacks_);
  }
  if (before & kWaiters) futex_wake_all_private(status_);
  if (!lists) return;
  run_each(lists->anywhere);
  if (lists->pool_thread.empty()) return;
  // Whichever thread settled the state (perhaps one polling in get()),
  // callbacks run on the pool's thread, as documented.
  if (auto poller = poller_.lock()) poller->run_callbacks(std::move(lists->pool_thread));
  else run_each(lists->pool_thread);
}

void StateBase::run_each(Callbacks& callbacks) noexcept {
  for (auto& cb : callbacks) run_one(cb);
}

// Nobody can act on a callback's exception where it runs (the pool's
// thread, or another call's settling): like concurrent.futures'
// add_done_callback, it is printed and ignored, wherever the callback runs.
void StateBase::run_one(const std::function<void()>& callback) noexcept {
  try {
    callback();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "procpool: a Future callback threw %s: %s\n", demangle(typeid(e).name()).c_str(), e.what());
  } catch (...) {
    std::fprintf(stderr, "procpool: a Future callback threw a non-standard exception\n");
  }
}

bool StateBase::cancelled() const noexcept { return holds_error<TaskCancelled>(error_); }

bool StateBase::settle_error(std::exception_ptr error) {
  if (!try_claim()) return false;
  set_error(std::move(error));
  publish();
  return true;
}

bool StateBase::settle_as(const StateBase& failed) {
  if (!try_claim()) return false;
  set_error(failed.error());
  origin_ = failed.origin_;
  publish();
  return true;
}

void StateBase::add_callback(Callbacks CallbackLists::*list, std::function<void()> callback) {
  {
    SpinGuard guard(callbacks_lock_);
    if (!ready()) {
      if (!callbacks_) callbacks_ = std::make_unique<CallbackLists>();
      ((*callbacks_).*list).push_back(std::move(callback));
      return;
    }
  }
  run_one(callback);
}

void StateBase::before_ready(std::function<void()> callback) {
  if (ready()) return callback();
  {
    SpinGuard guard(callbacks_lock_);
    if (!callbacks_) callbacks_ = std::make_unique<CallbackLists>();
    callbacks_->first.push_back(std::move(callback));
  }
  has_first_ = true;
}

void StateBase::on_ready_anywhere(std::function<void()> callback) {
  add_callback(&CallbackLists::anywhere, std::move(callback));
}

void StateBase::on_ready(std::function<void()> callback) {
  add_callback(&CallbackLists::pool_thread, std::move(callback));
}

void StateBase::poll_for_a_while(std::chrono::steady_clock::time_point deadline) {
  auto poller = poller_.lock();
  if (!poller) return;
  auto budget = poller->poll_budget(request_bytes_.load(std::memory_order_relaxed));
  if (budget.count() == 0) return;
  // The clock is read once before the poll, and in it only between polls
  // that found the state still pending: a read costs about as much as a
  // poll, and one between an answer and the return would be on the
  // caller's path (hot round trip: about 50 ns less with these three).
  auto start = std::chrono::steady_clock::now();
  auto until = std::min(deadline, start + budget);
  PollingScope polling(*poller);
  // A worker that was asleep when its call came needs a CPU to wake up on,
  // and the scheduler often picks this thread's: yield between polls from
  // the start, so that it gets it. A hot worker's answer needs no yield.
  bool yield = woke_worker_.load(std::memory_order_relaxed);
  bool took = poll_answers_until(
      until, yield ? start : std::chrono::steady_clock::time_point::max(), [&] { return poller->poll_responses(); },
      [this] { return ready(); });
  // A poll cut short by the caller's own deadline says nothing of its worth.
  if (ready() || std::chrono::steady_clock::now() < deadline) poller->polled(took || ready());
}

void StateBase::wait() { wait_until(std::chrono::steady_clock::time_point::max()); }

void refuse_in_another_process(const Poller& poller, const char* what) {
  if (poller.in_another_process())
    throw Error(std::string(what) + " in process " + std::to_string(this_process()) + ", forked from process " +
                std::to_string(poller.owner_process()) +
                " after its call was sent: the answer can only arrive in that process");
}

void refuse_in_another_process(const StateBase& state, const char* what) {
  if (state.ready()) return;  // a callback on a settled state runs at once, here as anywhere
  if (auto poller = state.poller()) refuse_in_another_process(*poller, what);
}

void refuse_blocking_wait(const Poller& poller, const char* what) {
  refuse_in_another_process(poller, what);
  if (poller.on_own_thread())
    throw Error(std::string(what) +
                " from the pool's own thread (a then() callback or a coroutine the pool resumed) would deadlock: "
                "chain with then() or co_await instead");
}

bool StateBase::wait_until(std::chrono::steady_clock::time_point deadline) {
  if (ready()) return true;
  if (auto poller = poller_.lock()) {
    // A wait that cannot block (its deadline has passed: wait_for(0ms))
    // is a look, which is no deadlock anywhere.
    if (poller->in_another_process() || deadline > std::chrono::steady_clock::now())
      refuse_blocking_wait(*poller, "a blocking wait on a Future");
  }
  poll_for_a_while(deadline);
  uint32_t seen = status_.load(std::memory_order_acquire);
  while ((seen & kStage) != kReady) {
    // Announce, then sleep on exactly the value announced (see the header).
    if (!(seen & kWaiters) &&
        !status_.compare_exchange_weak(seen, seen | kWaiters, std::memory_order_acquire, std::memory_order_acquire))
      continue;
    seen |= kWaiters;
    if (deadline == std::chrono::steady_clock::time_point::max()) {
      futex_wait_private(status_, seen, nullptr);
    } else {
      auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::steady_clock::duration::zero()) return ready();
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      timespec timeout{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
      futex_wait_private(status_, seen, &timeout);
    }
    seen = status_.load(std::memory_order_acquire);
  }
  return true;
}

}  // namespace procpool::detail
