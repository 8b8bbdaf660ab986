// SPDX-License-Identifier: MIT
#pragma once
// asyncio's combinators for procpool::Task: gather and wait_for.
//
// Each awaitable given to them (a Task, a Future, a TaskHandle) runs as a
// child task of its own, concurrently. Cancelling the task that awaits the
// combinator cancels the children.
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <optional>
#include <tuple>
#include <variant>
#include <vector>

#include <procpool/common/clock_time.hpp>
#include <procpool/loop/event_loop.hpp>
#include <procpool/loop/result.hpp>

namespace procpool {

namespace detail {

template <class A>
struct AwaitResult;
template <class T>
struct AwaitResult<Task<T>> {
  using type = T;
};
template <class T>
struct AwaitResult<Future<T>> {
  using type = T;
};
template <class T>
struct AwaitResult<TaskHandle<T>> {
  using type = T;
};
template <class A>
using await_result_t = typename AwaitResult<std::decay_t<A>>::type;
template <class T>
using stored_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

template <class A>
inline constexpr bool is_future_v = false;
template <class T>
inline constexpr bool is_future_v<Future<T>> = true;

// A pool call behind a Future can be dropped at once, before its child task
// is next resumed (which may be after the loop stopped running).
template <class A>
std::function<void()> dropper(const A& awaitable) {
  if constexpr (is_future_v<std::decay_t<A>>) return [f = awaitable]() mutable { f.cancel(); };
  else return {};
}

template <class A>
Task<await_result_t<A>> as_task(A awaitable) {
  if constexpr (std::is_void_v<await_result_t<A>>) co_await awaitable;
  else co_return co_await awaitable;
}
template <class T>
Task<T> as_task(Task<T> task) {
  return task;
}

// Suspends until the given states settle: all of them, or the first one to
// fail (FirstError), or any one (Any); optionally until a deadline. On
// cancellation of the awaiting task, cancels `children` and throws
// TaskCancelled.
class WhenSettled {
 public:
  // FirstError: any failure ends the wait, a cancellation too (gather, as
  // asyncio.gather treats a cancelled child as one that raised).
  // FirstRaised: only an exception ends it; a cancelled state is merely done
  // (wait's FIRST_EXCEPTION, as in asyncio and concurrent.futures).
  enum class Mode { All, FirstError, FirstRaised, Any };
  enum class Outcome { Done, Failed, TimedOut };

  WhenSettled(std::vector<std::shared_ptr<StateBase>> states, Mode mode,
              std::vector<std::shared_ptr<CancelScope>> children, std::vector<std::function<void()>> droppers,
              std::optional<std::chrono::steady_clock::duration> timeout = std::nullopt)
      : watch_(std::make_shared<Watch>(Watch{std::move(states), mode})), children_(std::move(children)),
        droppers_(std::move(droppers)), timeout_(timeout) {}

  bool await_ready() const { return watch_->satisfied().has_value(); }
  template <InTask P>
  bool await_suspend(std::coroutine_handle<P> h) {
    scope_ = h.promise().scope;
    if (scope_ && scope_->cancelled) return false;
    auto once = std::make_shared<ResumeOnce>(h.promise().anchor, h);
    // Each settlement re-checks on the loop's thread; the first that finds
    // the condition met resumes. (The lambdas own what they use: they may
    // run after this awaiter is gone.)
    for (auto& s : watch_->states)
      s->on_ready([once, watch = watch_, anchor = h.promise().anchor, settled = s.get()] {
        bool ends = watch->ends_early(*settled);
        anchor->post([once, watch, ends] {
          if (watch->note_settled(ends)) once->resume_here();
        });
      });
    if (timeout_) {
      timer_ = std::make_shared<boost::asio::steady_timer>(*h.promise().io, *timeout_);
      timer_->async_wait([once](const boost::system::error_code& ec) {
        if (!ec) once->resume_here();
      });
    }
    if (scope_) scope_->interrupt = [once] { ResumeOnce::post(once); };
    return true;
  }
  Outcome await_resume() {
    if (timer_) timer_->cancel();
    if (scope_) {
      scope_->interrupt = nullptr;
      if (scope_->cancelled) {
        scope_->cancelled = false;
        cancel_children();
        throw TaskCancelled("the task was cancelled");
      }
    }
    if (auto s = watch_->satisfied()) return *s;
    return Outcome::TimedOut;
  }
  void cancel_children() {
    for (auto& drop : droppers_)
      if (drop) drop();
    for (auto& c : children_) c->cancel();
  }

 private:
  struct Watch {
    std::vector<std::shared_ptr<StateBase>> states;
    Mode mode;
    size_t settled = 0;  // counted on the loop's thread, one per state
    bool ended_early = false;
    // A settled state that satisfies the wait before the others are done.
    bool ends_early(const StateBase& s) const {
      switch (mode) {
        case Mode::Any:
          return true;
        case Mode::FirstError:
          return s.failed();
        case Mode::FirstRaised:
          return s.failed() && !s.cancelled();
        case Mode::All:
          return false;
      }
      return false;
    }
    // O(1) per settlement: a gather of 100,000 futures must not rescan them
    // all each time one settles.
    bool note_settled(bool ends) {
      ++settled;
      ended_early |= ends;
      return ended_early || settled == states.size();
    }
    // A full scan: only before suspending and once after resuming.
    std::optional<Outcome> satisfied() const {
      size_t ready = 0;
      for (auto& s : states) {
        if (!s->ready()) continue;
        ++ready;
        if (ends_early(*s)) return mode == Mode::Any ? Outcome::Done : Outcome::Failed;
      }
      if (ready == states.size()) return Outcome::Done;
      return std::nullopt;
    }
  };

  std::shared_ptr<Watch> watch_;
  std::vector<std::shared_ptr<CancelScope>> children_;
  std::vector<std::function<void()>> droppers_;
  std::optional<std::chrono::steady_clock::duration> timeout_;
  std::shared_ptr<boost::asio::steady_timer> timer_;
  std::shared_ptr<CancelScope> scope_;
};

template <class T>
TaskHandle<T> start_child(const TaskContext& ctx, Task<T> task) {
  return start_task(ctx, std::move(task), std::make_shared<CancelScope>());
}

template <class T>
struct FutureChild {
  Future<T> f;
  Future<T>& future() noexcept { return f; }
};

// The child tasks a combinator starts, and what it needs to wait for and
// cancel them.
class Children {
 public:
  explicit Children(TaskContext ctx) : ctx_(std::move(ctx)) {}
  // A Future is watched as it is (a pool call needs no task around it); any
  // other awaitable runs as a child task. Either way the result is reached
  // through .future().
  template <class A>
  auto start(A awaitable) {
    droppers_.push_back(dropper(awaitable));
    if constexpr (is_future_v<A>) {
      states_.push_back(awaitable.shared_state());
      return FutureChild<await_result_t<A>>{std::move(awaitable)};
    } else {
      auto handle = start_child(ctx_, as_task(std::move(awaitable)));
      states_.push_back(handle.future().shared_state());
      scopes_.push_back(handle.scope());
      return handle;
    }
  }
  WhenSettled settled(WhenSettled::Mode mode,
                      std::optional<std::chrono::steady_clock::duration> timeout = std::nullopt) {
    return WhenSettled(std::move(states_), mode, std::move(scopes_), std::move(droppers_), timeout);
  }

 private:
  TaskContext ctx_;
  std::vector<std::shared_ptr<StateBase>> states_;
  std::vector<std::shared_ptr<CancelScope>> scopes_;
  std::vector<std::function<void()>> droppers_;
};

template <class H, class T = typename std::decay_t<decltype(std::declval<H&>().future())>::value_type>
stored_t<T> take_value(H& h) {
  if constexpr (std::is_void_v<T>) {
    h.future().get();
    return {};
  } else {
    return h.future().get();
  }
}

template <class H, class T = typename std::decay_t<decltype(std::declval<H&>().future())>::value_type>
Result<T> take_result(H& h) {
  try {
    if constexpr (std::is_void_v<T>) {
      h.future().get();
      return Result<T>(std::in_place);
    } else {
      return Result<T>(std::in_place, h.future().get());
    }
  } catch (...) {
    // A pool call's future knows where its task's exception was raised.
    auto state = h.future().shared_state();
    return Result<T>(std::current_exception(), state ? state->origin() : nullptr);
  }
}

template <class Handle>
void note_first_error(std::exception_ptr& first, Handle& h) {
  if (!first) first = h.future().error_if_failed();
}

}  // namespace detail

// Runs the awaitables concurrently; gives their results in order. The first
// exception propagates and the other children are cancelled.
template <class... A>
Task<std::tuple<detail::stored_t<detail::await_result_t<A>>...>> gather(A... awaitables) {
  detail::Children children(co_await detail::current_context{});
  std::tuple handles{children.start(std::move(awaitables))...};  // braces: started left to right
  auto wait = children.settled(detail::WhenSettled::Mode::FirstError);
  if (co_await wait == detail::WhenSettled::Outcome::Failed) {
    std::exception_ptr first;
    std::apply([&](auto&... h) { (detail::note_first_error(first, h), ...); }, handles);
    wait.cancel_children();  // they stop at their next await point
    std::rethrow_exception(first);
  }
  co_return std::apply([](auto&... h) { return std::make_tuple(detail::take_value(h)...); }, handles);
}

// Runs the awaitables concurrently; gives each one's Result, in order.
template <class... A>
Task<std::tuple<Result<detail::await_result_t<A>>...>> gather(ReturnExceptions, A... awaitables) {
  detail::Children children(co_await detail::current_context{});
  std::tuple handles{children.start(std::move(awaitables))...};
  co_await children.settled(detail::WhenSettled::Mode::All);
  co_return std::apply([](auto&... h) { return std::make_tuple(detail::take_result(h)...); }, handles);
}

namespace detail {
template <class Range>
auto start_all(Children& children, Range& awaitables) {
  std::vector<decltype(children.start(std::move(*awaitables.begin())))> handles;
  handles.reserve(awaitables.size());
  for (auto& a : awaitables) handles.push_back(children.start(std::move(a)));
  return handles;
}
}  // namespace detail

// A range of awaitables of one type (e.g. std::vector<Future<long>>):
// results in order; the first exception propagates, the rest are cancelled.
template <class Range, class T = detail::await_result_t<typename std::decay_t<Range>::value_type>>
Task<std::vector<detail::stored_t<T>>> gather(Range awaitables) {
  detail::Children children(co_await detail::current_context{});
  auto handles = detail::start_all(children, awaitables);
  auto wait = children.settled(detail::WhenSettled::Mode::FirstError);
  if (co_await wait == detail::WhenSettled::Outcome::Failed) {
    std::exception_ptr first;
    for (auto& h : handles) detail::note_first_error(first, h);
    wait.cancel_children();
    std::rethrow_exception(first);
  }
  std::vector<detail::stored_t<T>> out;
  out.reserve(handles.size());
  for (auto& h : handles) out.push_back(detail::take_value(h));
  co_return out;
}

// The same, giving each one's Result.
template <class Range, class T = detail::await_result_t<typename std::decay_t<Range>::value_type>>
Task<std::vector<Result<T>>> gather(ReturnExceptions, Range awaitables) {
  detail::Children children(co_await detail::current_context{});
  auto handles = detail::start_all(children, awaitables);
  co_await children.settled(detail::WhenSettled::Mode::All);
  std::vector<Result<T>> out;
  out.reserve(handles.size());
  for (auto& h : handles) out.push_back(detail::take_result(h));
  co_return out;
}

// Awaits `awaitable` for at most `timeout`: on expiry cancels it and throws
// TaskTimeout. (A pool call is cancelled: dropped if not yet begun; if a
// worker runs it, the worker is stopped unless cancel_running is false,
// and then the call goes on to its end and its result is dropped.)
template <class A, class Rep, class Period>
Task<detail::await_result_t<A>> wait_for(A awaitable, std::chrono::duration<Rep, Period> timeout) {
  detail::Children children(co_await detail::current_context{});
  auto child = children.start(std::move(awaitable));
  auto wait = children.settled(detail::WhenSettled::Mode::All, detail::clock_duration(timeout));
  if (co_await wait == detail::WhenSettled::Outcome::TimedOut) {
    wait.cancel_children();
    throw TaskTimeout("wait_for: no result within " + detail::duration_text(timeout));
  }
  co_return child.future().get();
}

}  // namespace procpool
