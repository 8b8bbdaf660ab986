// SPDX-License-Identifier: MIT
#pragma once
// How a call is submitted: submit_on / call_on check it against the
// registry, encode it and queue it, taking a place under max_pending as the
// Admission says; and backpressure's forms that do not block: try_submit /
// try_call, co_await submit_async in a procpool::Task, and the deferred
// submit that EventLoop::run_in_executor uses. Included at the end of
// process_pool.hpp.
#include <coroutine>
#include <memory>
#include <tuple>
#include <utility>

#include <procpool/loop/process_pool.hpp>
#include <procpool/loop/task_context.hpp>

namespace procpool {

template <class R, class... A, class... Args>
Future<R> ProcessPool::submit_on(detail::PoolCore& core, detail::Admission admission, const CallOptions& options,
                                 std::type_identity_t<std::shared_ptr<detail::SharedState<R>>> state, R (*fn)(A...),
                                 Args&&... args) {
  auto encode = detail::typed_arguments<A...>(std::forward<Args>(args)...);
  uint32_t id = 0;
  std::exception_ptr failure;
  const detail::FunctionEntry* entry = detail::entry_of(fn, id, failure);
  if (!entry) return detail::failed_future<R>(failure, std::move(state));
  return enqueue_into<R>(core, id, *entry, encode, detail::FrameKind::Call, std::move(state), options, admission);
}

template <class R, class... Args>
Future<R> ProcessPool::call_on(detail::PoolCore& core, detail::Admission admission, const CallOptions& options,
                               std::shared_ptr<detail::SharedState<R>> state, std::string_view name, Args&&... args) {
  uint32_t id = 0;
  std::exception_ptr failure;
  const detail::FunctionEntry* entry = detail::entry_named<R, Args...>(name, id, failure);
  if (!entry) return detail::failed_future<R>(failure, std::move(state));
  return enqueue_into<R>(core, id, *entry, detail::named_arguments(args...), detail::FrameKind::Call, std::move(state),
                         options, admission);
}

namespace detail {

// co_await pool.submit_async(fn, args...): a place under max_pending, then
// the submit. The task suspends in a FIFO of waiters (Backpressure) and is
// resumed on its loop's thread by the thread that frees a place (or by
// shutdown, which refuses it). It holds at most one place, given back if
// the task is cancelled or destroyed before it submits.
template <class R, class Submit>
class [[nodiscard]] SubmitAwaitable {
  using Outcome = Backpressure::Outcome;

 public:
  SubmitAwaitable(std::shared_ptr<Backpressure> room, Submit submit)
      : room_(std::move(room)), submit_(std::move(submit)) {}
  SubmitAwaitable(const SubmitAwaitable&) = delete;
  SubmitAwaitable& operator=(const SubmitAwaitable&) = delete;
  ~SubmitAwaitable() {
    // Destroyed while it waited (its loop went away): a place granted to it
    // meanwhile goes back.
    const bool admitted = waiter_ ? room_->withdraw(waiter_) == Outcome::Admitted : outcome_ == Outcome::Admitted;
    if (admitted) room_->release();
  }

  bool await_ready() {
    if (!room_) return true;  // no max_pending
    outcome_ = room_->try_acquire();
    return outcome_ != Outcome::Full;
  }
  template <InTask P>
  bool await_suspend(std::coroutine_handle<P> h) {
    scope_ = h.promise().scope;
    if (scope_ && scope_->cancelled) return false;  // await_resume throws
    auto once = std::make_shared<ResumeOnce>(h.promise().anchor, h);
    auto waiter = std::make_shared<Backpressure::Waiter>();
    waiter->grant = [once](bool) { ResumeOnce::post(once); };
    outcome_ = room_->acquire_or_queue(waiter);
    if (outcome_ != Outcome::Full) return false;  // room (or shut down) after all: no suspension
    waiter_ = std::move(waiter);
    if (scope_)
      scope_->interrupt = [once, room = room_, waiter = waiter_] {
        // Still waiting: out of the queue, and resumed to throw. Otherwise
        // its grant has posted the resumption already.
        if (room->withdraw(waiter) == Outcome::Full) ResumeOnce::post(once);
      };
    return true;
  }
  Future<R> await_resume() {
    if (waiter_) {
      outcome_ = room_->withdraw(waiter_);  // how it was decided
      waiter_.reset();
    }
    if (scope_) {
      scope_->interrupt = nullptr;
      if (scope_->cancelled) {
        scope_->cancelled = false;  // delivered once, as asyncio does
        if (std::exchange(outcome_, Outcome::Closed) == Outcome::Admitted) room_->release();
        throw TaskCancelled("the task was cancelled while it waited for room in the pool (max_pending)");
      }
    }
    switch (std::exchange(outcome_, Outcome::Closed)) {
      case Outcome::Admitted:
        return submit_(Admission::Reserved, nullptr);
      case Outcome::Full:
        return submit_(Admission::Try, nullptr);  // not decided (cannot happen): never block the loop
      case Outcome::Closed:
        break;
    }
    return submit_(Admission::Wait, nullptr);  // no bound, or shut down: fails with PoolShutdown
  }

 private:
  std::shared_ptr<Backpressure> room_;  // null: no max_pending
  Submit submit_;
  Outcome outcome_ = Outcome::Closed;             // Admitted while it holds a place it has not used
  std::shared_ptr<Backpressure::Waiter> waiter_;  // while queued
  std::shared_ptr<CancelScope> scope_;
};

}  // namespace detail

template <class R, class... A, class... Args>
Future<R> ProcessPool::try_submit(R (*fn)(A...), Args&&... args) {
  return submit_on(*core_, detail::Admission::Try, CallOptions{}, nullptr, fn, std::forward<Args>(args)...);
}

template <class R, class... Args>
Future<R> ProcessPool::try_call(std::string_view name, Args&&... args) {
  return call_on<R>(*core_, detail::Admission::Try, CallOptions{}, nullptr, name, std::forward<Args>(args)...);
}

template <class R, class... A, class... Args>
auto ProcessPool::submit_async(R (*fn)(A...), Args&&... args) {
  auto submit = deferred_submit(CallOptions{}, fn, std::forward<Args>(args)...);
  return detail::SubmitAwaitable<R, decltype(submit)>(backpressure(), std::move(submit));
}

template <class R, class... A, class... Args>
auto ProcessPool::deferred_submit(const CallOptions& options, R (*fn)(A...), Args&&... args) const {
  static_assert(sizeof...(A) == sizeof...(Args), "wrong number of arguments for this function");
  // Converted to the parameter types now: nothing the caller passed (a
  // char array, a temporary) is referred to once this returns.
  return [core = std::weak_ptr<detail::PoolCore>(core_), room = backpressure(), fn, options,
          call = std::tuple<std::decay_t<A>...>(std::forward<Args>(args)...)](
             detail::Admission admission, std::shared_ptr<detail::SharedState<R>> state) mutable {
    return detail::submit_if_alive<R>(core, room, admission, std::move(state), [&](detail::PoolCore& pool, auto into) {
      return std::apply(
          [&](auto&... xs) { return submit_on(pool, admission, options, std::move(into), fn, std::move(xs)...); },
          call);
    });
  };
}

template <class R, class... Args>
auto ProcessPool::deferred_call(const CallOptions& options, std::string_view name, Args&&... args) const {
  return [core = std::weak_ptr<detail::PoolCore>(core_), room = backpressure(), name = std::string(name), options,
          call = std::tuple<detail::named_t<Args>...>(std::forward<Args>(args)...)](
             detail::Admission admission, std::shared_ptr<detail::SharedState<R>> state) mutable {
    return detail::submit_if_alive<R>(core, room, admission, std::move(state), [&](detail::PoolCore& pool, auto into) {
      return std::apply(
          [&](auto&... xs) { return call_on<R>(pool, admission, options, std::move(into), name, std::move(xs)...); },
          call);
    });
  };
}

template <class R, class Submit>
Future<R> ProcessPool::submit_when_room(Submit submit) {
  return detail::submit_when_room<R>(
      backpressure(), [this](detail::StateBase& state) { watch(state); }, std::move(submit));
}

}  // namespace procpool
