// SPDX-License-Identifier: MIT
#pragma once
#include <chrono>
#include <coroutine>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include <procpool/common/clock_time.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/loop/future_state.hpp>
#include <procpool/loop/task_context.hpp>

namespace procpool {

// The eventual result of a pool call. A copyable handle to one shared state:
// it settles exactly once, with the value, the exception the task threw, or
// the pool's error (WorkerCrashed, PoolShutdown, ...).
//
// Thread safety: any thread may wait on, poll or attach to a Future; get()
// moves the result out and may succeed once per shared state; result()
// reads it in place, as often as asked.
template <class T>
class Future {
 public:
  using value_type = T;
  Future() = default;
  explicit Future(std::shared_ptr<detail::SharedState<T>> state) : state_(std::move(state)) {}

  bool valid() const noexcept { return state_ != nullptr; }
  // True once the result (or error) is in; never blocks.
  bool ready() const { return state().ready(); }
  // Blocks until ready. The calling thread first polls the pool's response
  // rings for a moment (PoolOptions::host_spin), then sleeps.
  void wait() const { state().wait(); }
  // Waits at most `timeout` (any length: hours::max() is no limit); true
  // if ready.
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> timeout) const {
    return state().wait_until(detail::deadline_after(timeout));
  }
  // Waits, then returns the value or rethrows the error. The value is moved
  // out: a second get() on the same state throws procpool::Error.
  T get() {
    state().wait();
    return state_->take();
  }
  // Waits, then returns the value where it lies in the shared state, or
  // rethrows the error, as concurrent.futures' result(): it may be called
  // again, on this handle or any copy (a then() callback and the code that
  // waits can both read it), and copies nothing. The reference is valid
  // while a handle to the call lives and get() has not moved the value
  // out; result() after get() throws procpool::Error. Not concurrently
  // with get().
  std::conditional_t<std::is_void_v<T>, void, std::add_lvalue_reference_t<const T>> result() const& {
    state().wait();
    if constexpr (std::is_void_v<T>) state().rethrow_if_error();
    else return state().peek();
  }
  // On a temporary (pool.submit(f, x).result()), whose reference would
  // outlive it: the value itself, copied, or moved out as by get() if it
  // cannot be copied.
  T result() && {
    if constexpr (std::is_void_v<T> || std::is_copy_constructible_v<T>) return std::as_const(*this).result();
    else return get();
  }
  // Calls callback(Future<T>) once the future is ready: at once on this
  // thread if it already is, otherwise on the pool's own thread. Keep it
  // short, and do not block there on a future that is not ready (that
  // throws procpool::Error instead of deadlocking). An exception it throws
  // is printed to stderr and ignored, on either thread (as
  // concurrent.futures' add_done_callback logs and ignores it). In a process
  // forked after the call was sent it throws procpool::Error, as get() does
  // there: the callback could never run.
  template <class Callback>
  void then(Callback&& callback) {
    detail::refuse_in_another_process(state(), "Future::then()");
    state().on_ready([self = *this, cb = std::forward<Callback>(callback)]() mutable { cb(std::move(self)); });
  }

  // Withdraws or stops the call. True exactly when the future (now ready)
  // fails with TaskCancelled; false when the call's own result will settle
  // the future (as concurrent.futures' Future.cancel()). Where the call is:
  //   - in the pool's queue: withdrawn, true;
  //   - handed ahead to a worker, behind a call whose answer the worker has
  //     not written yet: withdrawn (the worker skips it), true;
  //   - the worker's next or running call: with cancel_running (the
  //     default; PoolOptions, CallOptions) the worker is killed with its
  //     process group and replaced, the calls behind it requeued, true;
  //     without it, or when its answer is already arriving, or its worker
  //     just died or is being stopped: false; it runs to its end.
  // A future that is already ready, or not a pool call, gives false.
  // Thread safety: any thread; never blocks on a worker.
  bool cancel() { return state().cancel(); }

  // True if it is ready and failed with TaskCancelled (as
  // concurrent.futures' Future.cancelled()).
  bool cancelled() const { return state().ready() && state().cancelled(); }

  // Where the call is (pool_stats.hpp): pending, running (with the pid of
  // the worker that has begun it), done, or cancelled. A snapshot: it may
  // have moved on by the time it is read. A map's future is pending until
  // it is done (its chunks are separate calls). Never blocks on a worker.
  CallStatus status() const {
    const auto& s = state();
    if (s.ready()) return {s.cancelled() ? CallState::cancelled : CallState::done, 0};
    auto poller = s.poller();
    CallStatus now = poller ? poller->status_of(s) : CallStatus{};
    // Settled meanwhile: say so rather than a stage it has left.
    if (s.ready()) return {s.cancelled() ? CallState::cancelled : CallState::done, 0};
    return now;
  }
  // What the call cost in its worker, once it is ready, if it was measured
  // (CallOptions::measure_usage) and its worker answered (a call that
  // crashed, timed out or was cancelled has none).
  std::optional<CallUsage> usage() const {
    const auto& s = state();
    if (!s.ready() || !s.usage()) return std::nullopt;
    return *s.usage();
  }
  // Where the exception it failed with was raised, once it is ready, when
  // that exception is one the task threw: its type as thrown, what(), the
  // function, the worker's pid and the backtrace at the throw. The
  // exception itself keeps its exact type (a std::runtime_error arrives as
  // one), which leaves no room for these. nullopt for a value, and for the
  // verdicts the host reaches itself (WorkerCrashed, TaskTimeout,
  // TaskCancelled, ...), which carry what they know themselves; an error
  // the worker raised on the call's behalf (SerializationError,
  // ResourceLimitExceeded for max_message_bytes) has one. A map's future
  // gives its earliest failed chunk's (gather(return_exceptions, ...)
  // passes each call's on in its Result).
  std::optional<RemoteOrigin> remote_origin() const {
    const auto& s = state();
    if (!s.ready() || !s.origin()) return std::nullopt;
    return *s.origin();
  }
  // As concurrent.futures' Future.running(): a worker has begun the call and
  // it is not settled yet.
  bool running() const { return status().state == CallState::running; }

  // The exception it settled with, if it is ready and failed; else null.
  std::exception_ptr error_if_failed() const { return state().ready() ? state().error() : nullptr; }
  std::shared_ptr<detail::StateBase> shared_state() const { return state_; }

  // co_await future. In a procpool::Task: resumes on the task's loop thread,
  // and a cancellation of the task throws TaskCancelled here (and drops the
  // call if no worker has it yet). In any other coroutine: resumes on the
  // pool's own thread. Returns get().
  auto operator co_await() {
    state();
    return Awaiter{*this, nullptr, nullptr, nullptr};
  }

 private:
  struct Awaiter {
    Future future;
    std::shared_ptr<detail::CancelScope> scope;
    std::shared_ptr<detail::Poller> poller;  // the pool, polled by the loop meanwhile
    std::shared_ptr<detail::LoopAnchor> anchor;
    bool await_ready() const { return future.ready(); }
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
      if constexpr (detail::InTask<P>) {
        scope = h.promise().scope;
        if (scope && scope->cancelled) return false;
        auto pool = future.state_->poller();
        if (pool) detail::refuse_in_another_process(*pool, "co_await on a Future");
        auto once = std::make_shared<detail::ResumeOnce>(h.promise().anchor, h);
        if (scope) scope->interrupt = [once] { detail::ResumeOnce::post(once); };
        // Straight from the settling thread to the loop: no stop on the pool's.
        future.state_->on_ready_anywhere([once] { detail::ResumeOnce::post(once); });
        if ((poller = std::move(pool))) {
          anchor = h.promise().anchor;
          anchor->await_begin(poller);
        }
      } else {
        detail::refuse_in_another_process(*future.state_, "co_await on a Future");
        future.state_->on_ready([h] { h.resume(); });
      }
      return true;
    }
    T await_resume() {
      if (poller) anchor->await_end(poller);
      if (scope) {
        scope->interrupt = nullptr;
        if (scope->cancelled) {
          scope->cancelled = false;  // delivered, as asyncio delivers CancelledError once
          future.cancel();
          throw TaskCancelled("the task was cancelled");
        }
      }
      return future.state_->take();
    }
  };
  detail::SharedState<T>& state() const {
    if (!state_) detail::throw_no_state();
    return *state_;
  }
  std::shared_ptr<detail::SharedState<T>> state_;
};

}  // namespace procpool
