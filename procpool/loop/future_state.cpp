// SPDX-License-Identifier: MIT
#include <procpool/loop/future_state.hpp>


#include <cstdio>

#include <procpool/common/errors.hpp>
#include <procpool/common/type_name.hpp>

namespace procpool::detail {
namespace {
std::atomic<long> g_live_states{0};
}

StateBase::StateBase() noexcept { g_live_states.fetch_add(1, std::memory_order_relaxed); }
StateBase::~StateBase() { g_live_states.fetch_sub(1, std::memory_order_relaxed); }
long StateBase::live_count() noexcept { return g_live_states.load(std::memory_order_relaxed); }

void throw_no_state() { throw Error("procpool::Future has no state (it was default-constructed)"); }

void throw_already_taken() { throw Error("Future::get(): the result was already taken (get() moves it out once)"); }

bool StateBase::try_claim() noexcept {
  uint32_t expected = kPending;
  return status_.compare_exchange_strong(expected, kClaimed, std::memory_order_acq_rel);
}

void StateBase::publish() {
  Callbacks callbacks, anywhere;
  {
    // Under the mutex so that on_ready() either sees kReady or has its
    // callback in the list we take here: never both, never neither.
    std::lock_guard lock(callbacks_mutex_);
    status_.store(kReady, std::memory_order_release);
    callbacks.swap(callbacks_);
    anywhere.swap(anywhere_callbacks_);
  }
  ready_cv_.notify_all();
  run_each(anywhere);
  if (callbacks.empty()) return;
  // Whichever thread settled the state (perhaps one polling in get()),
  // callbacks run on the pool's thread, as documented.
  if (auto poller = poller_.lock()) poller->run_callbacks(std::move(callbacks));
  else run_each(callbacks);
}

void StateBase::run_each(Callbacks& callbacks) noexcept {
  for (auto& cb : callbacks) {
    try {
      cb();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "procpool: a Future callback threw %s: %s\n", demangle(typeid(e).name()).c_str(), e.what());
    } catch (...) {
      std::fprintf(stderr, "procpool: a Future callback threw a non-standard exception\n");
    }
  }
}

bool StateBase::settle_error(std::exception_ptr error) {
  if (!try_claim()) return false;
  set_error(std::move(error));
  publish();
  return true;
}

void StateBase::add_callback(Callbacks& list, std::function<void()> callback) {
  {
    std::lock_guard lock(callbacks_mutex_);
    if (status_.load(std::memory_order_acquire) != kReady) {
      list.push_back(std::move(callback));
      return;
    }
  }
  callback();
}

void StateBase::on_ready_anywhere(std::function<void()> callback) { add_callback(anywhere_callbacks_, std::move(callback)); }

void StateBase::on_ready(std::function<void()> callback) { add_callback(callbacks_, std::move(callback)); }

void StateBase::poll_for_a_while(std::chrono::steady_clock::time_point deadline) {
  auto poller = poller_.lock();
  if (!poller) return;
  auto until = std::min(deadline, std::chrono::steady_clock::now() + poller->poll_budget(request_bytes_));
  while (!ready() && std::chrono::steady_clock::now() < until) poller->poll_responses();
}

void StateBase::wait() { wait_until(std::chrono::steady_clock::time_point::max()); }

bool StateBase::wait_until(std::chrono::steady_clock::time_point deadline) {
  if (ready()) return true;
  if (auto poller = poller_.lock(); poller && poller->on_own_thread())
    throw Error("a blocking wait on a Future from the pool's own thread (a then() callback or a coroutine the pool "
                "resumed) would deadlock: chain with then() or co_await instead");
  poll_for_a_while(deadline);
  std::unique_lock lock(callbacks_mutex_);
  auto is_ready = [&] { return status_.load(std::memory_order_acquire) == kReady; };
  if (deadline == std::chrono::steady_clock::time_point::max()) {
    ready_cv_.wait(lock, is_ready);
    return true;
  }
  return ready_cv_.wait_until(lock, deadline, is_ready);
}

}  // namespace procpool::detail
