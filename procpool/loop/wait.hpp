// SPDX-License-Identifier: MIT
#pragma once
// asyncio's wait, as_completed and shield for procpool::Task.
#include <optional>
#include <vector>

#include <procpool/loop/completion_queue.hpp>
#include <procpool/loop/gather.hpp>

namespace procpool {

enum class ReturnWhen { FirstCompleted, FirstException, AllCompleted };
inline constexpr ReturnWhen FIRST_COMPLETED = ReturnWhen::FirstCompleted;
inline constexpr ReturnWhen FIRST_EXCEPTION = ReturnWhen::FirstException;
inline constexpr ReturnWhen ALL_COMPLETED = ReturnWhen::AllCompleted;

template <class T>
struct WaitResult {
  std::vector<Future<T>> done;
  std::vector<Future<T>> pending;
};

// Waits until `when` holds for `futures` (or the timeout passes; no
// exception then) and splits them into done and pending. Cancels nothing.
// FIRST_EXCEPTION returns when a future fails with an exception, or when all
// are done: a cancelled future (TaskCancelled) is done, not an exception, as
// in asyncio and concurrent.futures.
template <class T>
Task<WaitResult<T>> wait(std::vector<Future<T>> futures, ReturnWhen when = ALL_COMPLETED,
                         std::optional<std::chrono::steady_clock::duration> timeout = std::nullopt) {
  std::vector<std::shared_ptr<detail::StateBase>> states;
  for (auto& f : futures) states.push_back(f.shared_state());
  auto mode = when == FIRST_COMPLETED   ? detail::WhenSettled::Mode::Any
              : when == FIRST_EXCEPTION ? detail::WhenSettled::Mode::FirstRaised
                                        : detail::WhenSettled::Mode::All;
  co_await detail::WhenSettled(std::move(states), mode, {}, {}, timeout);
  WaitResult<T> out;
  for (auto& f : futures) (f.ready() ? out.done : out.pending).push_back(std::move(f));
  co_return out;
}
// The same with a timeout of any length (hours::max() is no limit: it
// would overflow the clock's unit as an argument of the above).
template <class T, class Rep, class Period>
Task<WaitResult<T>> wait(std::vector<Future<T>> futures, ReturnWhen when, std::chrono::duration<Rep, Period> timeout) {
  return wait(std::move(futures), when, std::optional(detail::clock_duration(timeout)));
}

// Yields the futures as they complete:
//   auto completed = procpool::as_completed(std::move(futures));
//   while (!completed.empty()) { auto f = co_await completed.next(); use(f.get()); }
// (procpool::futures::as_completed, futures_wait.hpp, is the blocking one.)
template <class T>
class as_completed {
 public:
  // A future given more than once is yielded once, at its first place.
  explicit as_completed(std::vector<Future<T>> futures) : order_(std::move(futures)) {}
  bool empty() const noexcept { return order_.size() == 0; }
  size_t size() const noexcept { return order_.size(); }
  // The next future to complete (already ready when it is returned).
  Task<Future<T>> next() {
    if (empty()) throw Error("as_completed::next(): no futures left");
    for (;;) {
      if (auto f = order_.take()) co_return std::move(*f);
      std::vector<std::shared_ptr<detail::StateBase>> arrival{order_.arrival()};
      co_await detail::WhenSettled(std::move(arrival), detail::WhenSettled::Mode::Any, {}, {});
    }
  }

 private:
  detail::CompletionOrder<Future<T>> order_;
};

namespace detail {

// A Future's outcome once it settles, left in the Future for its other
// holders: a copy of the value (an error rethrows as often as asked).
template <class T>
Task<T> settled_copy(Future<T> future) {
  auto state = future.shared_state();
  std::vector<std::shared_ptr<StateBase>> states{state};  // named: g++ 12 cannot take a braced list in co_await
  co_await WhenSettled(std::move(states), WhenSettled::Mode::All, {}, {});
  if constexpr (std::is_void_v<T>) state->rethrow_if_error();
  else co_return std::static_pointer_cast<SharedState<T>>(state)->peek();
}

}  // namespace detail

// Runs `awaitable` as a task of its own that a cancellation of the awaiting
// task does not reach: the awaiter gets TaskCancelled, the inner work goes on.
// A Future keeps its result for its other copies (asyncio's
// `await wait_for(shield(task), t)`, then `await task`): the shield gets a
// copy of the value (a move-only one is taken, as co_await takes it).
template <class A>
Task<detail::await_result_t<A>> shield(A awaitable) {
  using T = detail::await_result_t<A>;
  auto context = co_await detail::current_context{};
  // Always a task of its own, even for a Future: awaiting the Future itself
  // would drop its pool call when we are cancelled.
  if constexpr (detail::is_future_v<A> && (std::is_void_v<T> || std::is_copy_constructible_v<T>)) {
    auto inner = detail::start_child(context, detail::settled_copy(std::move(awaitable)));
    co_return co_await inner.future();  // our cancellation stops here, not in `inner`
  } else {
    auto inner = detail::start_child(context, detail::as_task(std::move(awaitable)));
    co_return co_await inner.future();
  }
}

}  // namespace procpool
