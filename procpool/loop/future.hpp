// SPDX-License-Identifier: MIT
#pragma once
#include <chrono>
#include <coroutine>
#include <memory>
#include <utility>

#include <procpool/loop/future_state.hpp>

namespace procpool {

// The eventual result of a pool call. A copyable handle to one shared state:
// it settles exactly once, with the value, the exception the task threw, or
// the pool's error (WorkerCrashed, PoolShutdown, ...).
//
// Thread safety: any thread may wait on, poll or attach to a Future; get()
// moves the result out and may succeed once per shared state.
template <class T>
class Future {
 public:
  Future() = default;
  explicit Future(std::shared_ptr<detail::SharedState<T>> state) : state_(std::move(state)) {}

  bool valid() const noexcept { return state_ != nullptr; }
  // True once the result (or error) is in; never blocks.
  bool ready() const { return state().ready(); }
  // Blocks until ready. The calling thread first polls the pool's response
  // rings for a moment (PoolOptions::host_spin), then sleeps.
  void wait() const { state().wait(); }
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> timeout) const {
    return state().wait_until(std::chrono::steady_clock::now() +
                              std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout));
  }
  // Waits, then returns the value or rethrows the error. The value is moved
  // out: a second get() on the same state throws procpool::Error.
  T get() {
    state().wait();
    return state_->take();
  }
  // Calls callback(Future<T>) once the future is ready: at once on this
  // thread if it already is, otherwise on the pool's own thread. Keep it
  // short, and do not block there on a future that is not ready (that
  // throws procpool::Error instead of deadlocking).
  template <class Callback>
  void then(Callback&& callback) {
    state().on_ready([self = *this, cb = std::forward<Callback>(callback)]() mutable { cb(std::move(self)); });
  }

  // co_await future: suspends until ready, resumes on the pool's own
  // thread, and returns get().
  auto operator co_await() {
    struct Awaiter {
      Future future;
      bool await_ready() const noexcept { return future.ready(); }
      void await_suspend(std::coroutine_handle<> h) { future.state_->on_ready([h] { h.resume(); }); }
      T await_resume() { return future.state_->take(); }
    };
    state();
    return Awaiter{*this};
  }

 private:
  detail::SharedState<T>& state() const {
    if (!state_) detail::throw_no_state();
    return *state_;
  }
  std::shared_ptr<detail::SharedState<T>> state_;
};

}  // namespace procpool
