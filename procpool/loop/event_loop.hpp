// SPDX-License-Identifier: MIT
#pragma once
// procpool::EventLoop: asyncio's event loop on a Boost.Asio io_context.
//
//   procpool::EventLoop loop;
//   long v = loop.run_until_complete([&]() -> procpool::Task<long> {
//     co_return co_await loop.run_in_executor(pool, lucky_number, 5);
//   }());
//
// The loop runs on the thread that calls run_until_complete / run_forever;
// every task and callback runs there. call_soon, stop and TaskHandle::cancel
// are safe from any thread; create_task and the rest belong to the loop's
// thread (or to the thread about to run it), as in asyncio.
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string_view>
#include <unordered_map>

#include <procpool/common/clock_time.hpp>
#include <procpool/loop/future.hpp>
#include <procpool/loop/process_pool.hpp>
#include <procpool/loop/task.hpp>
#include <procpool/loop/thread_pool.hpp>

namespace procpool {

namespace detail {

// The tasks a loop drives that have not finished: destroyed (and their
// handles failed with TaskCancelled) if the loop goes away first.
class RootTasks {
 public:
  void add(void* frame, std::function<void()> abandon) { live_.emplace(frame, std::move(abandon)); }
  void remove(void* frame) { live_.erase(frame); }
  void abandon_all() {
    auto live = std::move(live_);
    for (auto& [frame, abandon] : live) abandon();
  }

 private:
  std::unordered_map<void*, std::function<void()>> live_;
};

// While it lives, SIGINT cancels `scope` (the main task) the first time and
// stops the loop the second time.
class InterruptWatch {
 public:
  InterruptWatch(boost::asio::io_context& io, std::shared_ptr<CancelScope> scope);
  ~InterruptWatch();
  int count() const noexcept { return count_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int count_ = 0;
};

// The coroutine that drives a root task: eager once posted, self-destroying.
struct Driver {
  struct promise_type : TaskContext {
    Driver get_return_object() noexcept { return {std::coroutine_handle<promise_type>::from_promise(*this)}; }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }  // drive() catches everything
  };
  std::coroutine_handle<promise_type> handle;
};

template <class T>
Driver drive(Task<T> task, std::shared_ptr<SharedState<T>> state) {
  std::exception_ptr error;
  if constexpr (std::is_void_v<T>) {
    try {
      co_await std::move(task);
    } catch (...) {
      error = std::current_exception();
    }
    if (state->try_claim()) {
      if (error) state->set_error(error);
      state->publish();
    }
  } else {
    std::optional<T> value;
    try {
      value.emplace(co_await std::move(task));
    } catch (...) {
      error = std::current_exception();
    }
    if (state->try_claim()) {
      if (error) state->set_error(error);
      else state->set_value(std::move(*value));
      state->publish();
    }
  }
}

}  // namespace detail

// A task running on a loop: awaitable (gives its result or rethrows), and
// cancellable from any thread.
template <class T>
class TaskHandle {
 public:
  TaskHandle(Future<T> result, std::shared_ptr<detail::CancelScope> scope, std::shared_ptr<detail::LoopAnchor> anchor)
      : result_(std::move(result)), scope_(std::move(scope)), anchor_(std::move(anchor)) {}
  bool done() const { return result_.ready(); }
  // Requests cancellation: the task sees TaskCancelled thrown at the await
  // point it is suspended in (or its first one, if it has not started).
  void cancel() {
    anchor_->post([scope = scope_] { scope->cancel(); });
  }
  Future<T>& future() noexcept { return result_; }
  const std::shared_ptr<detail::CancelScope>& scope() const noexcept { return scope_; }
  auto operator co_await() { return result_.operator co_await(); }

 private:
  Future<T> result_;
  std::shared_ptr<detail::CancelScope> scope_;
  std::shared_ptr<detail::LoopAnchor> anchor_;
};

// True if `f` is ready and failed with an E.
template <class E, class T>
bool dynamic_cast_error(const Future<T>& f) {
  return detail::holds_error<E>(f.error_if_failed());
}

namespace detail {
// True for a pool whose calls EventLoop::run_in_executor makes through its
// submit_when_room and call_when_room (never blocking, whatever its
// max_pending): a backend's pool specializes it (procpool/mpi/mpi_pool.hpp).
template <class Pool>
inline constexpr bool kOtherProcessPool = false;
}  // namespace detail

class EventLoop {
 public:
  EventLoop();
  // Tasks still running are abandoned: their handles fail with TaskCancelled.
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Schedules `task` to run as a task of its own on this loop.
  template <class T>
  TaskHandle<T> create_task(Task<T> task);

  // Runs the loop until `task` finishes; returns its result or rethrows.
  // Meanwhile SIGINT (Ctrl-C) cancels the task (it sees TaskCancelled at
  // its await point, so a ProcessPool it owns shuts down as the stack
  // unwinds) and this throws KeyboardInterrupt; a second SIGINT stops the
  // loop at once.
  template <class T>
  T run_until_complete(Task<T> task);
  // Runs the loop until stop().
  void run_forever();
  // Thread-safe: makes run_forever (or run_until_complete) return soon.
  void stop();

  // Thread-safe: runs fn on the loop's thread, soon.
  void call_soon(std::function<void()> fn);
  // Runs fn on the loop's thread after `delay`; the handle cancels it.
  class TimerHandle {
   public:
    explicit TimerHandle(std::weak_ptr<boost::asio::steady_timer> timer) : timer_(std::move(timer)) {}
    // Does nothing once the callback ran, or the loop is gone.
    void cancel() {
      if (auto t = timer_.lock()) t->cancel();
    }

   private:
    std::weak_ptr<boost::asio::steady_timer> timer_;  // owned by the pending wait
  };
  TimerHandle call_later(std::chrono::steady_clock::duration delay, std::function<void()> fn);
  // Seconds on the loop's monotonic clock.
  double time() const noexcept;

  // Runs fn(args...) in a worker process of `pool` (asyncio's
  // run_in_executor with a process pool): an awaitable Future. Never blocks
  // the loop's thread: at the pool's max_pending the call (its arguments
  // copied, not yet encoded) waits for a free place, FIFO with the pool's
  // other waiters, and is submitted by the thread that frees it; the Future
  // is pending meanwhile (cancel() cannot withdraw it until then). To
  // suspend the task itself until there is room, co_await
  // pool.submit_async(fn, args...).
  template <class R, class... A, class... Args>
  Future<R> run_in_executor(ProcessPool& pool, R (*fn)(A...), Args&&... args) {
    return run_in_executor_with(CallOptions{}, pool, fn, std::forward<Args>(args)...);
  }
  // Anything else in fn's place (a lambda, a functor) is refused at compile
  // time, saying what to pass instead (a ThreadPool runs any callable).
  template <int&... kNoExplicitArguments, class F, class... Args>
  requires(!detail::kFunctionPointer<F> &&
           !std::is_convertible_v<F, std::string_view>) detail::RefusedCallable<F> run_in_executor(ProcessPool&, F&&,
                                                                                                   Args&&...) {
    return {};
  }
  // By registered name; without R, refused at compile time saying so.
  template <class R, class... Args>
  Future<R> run_in_executor(ProcessPool& pool, std::string_view name, Args&&... args) {
    return run_in_executor_with<R>(CallOptions{}, pool, name, std::forward<Args>(args)...);
  }
  template <int&... kNoExplicitArguments, class... Args>
  detail::NamedCallWithoutResultType<Args...> run_in_executor(ProcessPool&, std::string_view, Args&&...) {
    return {};
  }
  // The same with this call's options (a deadline, cancel_running), as
  // ProcessPool::submit_with and call_with.
  template <class R, class... A, class... Args>
  Future<R> run_in_executor_with(const CallOptions& options, ProcessPool& pool, R (*fn)(A...), Args&&... args) {
    if (!pool.bounded()) return pool.submit_with(options, fn, std::forward<Args>(args)...);
    return pool.submit_when_room<R>(pool.deferred_submit(options, fn, std::forward<Args>(args)...));
  }
  template <class R, class... Args>
  Future<R> run_in_executor_with(const CallOptions& options, ProcessPool& pool, std::string_view name, Args&&... args) {
    if (!pool.bounded()) return pool.call_with<R>(options, name, std::forward<Args>(args)...);
    return pool.submit_when_room<R>(pool.deferred_call<R>(options, name, std::forward<Args>(args)...));
  }
  template <int&... kNoExplicitArguments, class F, class... Args>
  requires(!detail::kFunctionPointer<F> && !std::is_convertible_v<F, std::string_view>)
      detail::RefusedCallable<F> run_in_executor_with(const CallOptions&, ProcessPool&, F&&, Args&&...) {
    return {};
  }
  template <int&... kNoExplicitArguments, class... Args>
  detail::NamedCallWithoutResultType<Args...> run_in_executor_with(const CallOptions&, ProcessPool&, std::string_view,
                                                                   Args&&...) {
    return {};
  }
  // On another pool of processes that declares itself one (kOtherProcessPool:
  // procpool::mpi::MpiPool, whose workers are on other MPI ranks): its
  // submit_when_room, or call_when_room by name. It never blocks: at the
  // pool's max_pending the call waits for room on the host.
  template <class Pool, class R, class... A, class... Args>
  requires detail::kOtherProcessPool<Pool> Future<R> run_in_executor(Pool& pool, R (*fn)(A...), Args&&... args) {
    return pool.submit_when_room(CallOptions{}, fn, std::forward<Args>(args)...);
  }
  template <class R, class Pool, class... Args>
  requires detail::kOtherProcessPool<Pool> Future<R> run_in_executor(Pool& pool, std::string_view name,
                                                                     Args&&... args) {
    return pool.template call_when_room<R>(CallOptions{}, name, std::forward<Args>(args)...);
  }
  template <int&... kNoExplicitArguments, class Pool, class F, class... Args>
  requires(detail::kOtherProcessPool<Pool> && !detail::kFunctionPointer<F> &&
           !std::is_convertible_v<F, std::string_view>) detail::RefusedCallable<F> run_in_executor(Pool&, F&&,
                                                                                                   Args&&...) {
    return {};
  }
  template <int&... kNoExplicitArguments, class Pool, class... Args>
  requires detail::kOtherProcessPool<Pool> detail::NamedCallWithoutResultType<Args...> run_in_executor(Pool&,
                                                                                                       std::string_view,
                                                                                                       Args&&...) {
    return {};
  }
  // On a thread pool (any callable; no isolation).
  template <class F, class... Args>
  auto run_in_executor(ThreadPool& threads, F&& fn, Args&&... args) {
    return threads.submit(std::forward<F>(fn), std::forward<Args>(args)...);
  }
  // On the loop's default executor, a ThreadPool made on first use
  // (asyncio's run_in_executor(None, ...)).
  template <class F, class... Args>
  auto run_in_executor(std::nullptr_t, F&& fn, Args&&... args) {
    return default_executor().submit(std::forward<F>(fn), std::forward<Args>(args)...);
  }
  ThreadPool& default_executor();

  boost::asio::io_context& context() noexcept { return io_; }

 private:
  // Runs one handler; false when the loop was stopped. While tasks await
  // pool calls, first polls those pools' response rings for a moment.
  bool run_one();

  boost::asio::io_context io_;
  std::shared_ptr<detail::LoopAnchor> anchor_;
  detail::RootTasks roots_;
  detail::TaskContext context_;  // what tasks started here inherit
  std::unique_ptr<ThreadPool> default_executor_;
  std::mutex default_executor_mutex_;
};

namespace detail {
// Starts `task` as a task of its own on the loop of `loop`, under `scope`.
template <class T>
TaskHandle<T> start_task(const TaskContext& loop, Task<T> task, std::shared_ptr<CancelScope> scope) {
  auto state = std::make_shared<SharedState<T>>();
  Driver driver = drive<T>(std::move(task), state);
  auto& promise = driver.handle.promise();
  promise.io = loop.io;
  promise.anchor = loop.anchor;
  promise.roots = loop.roots;
  promise.scope = scope;
  void* frame = driver.handle.address();
  RootTasks* roots = loop.roots;
  roots->add(frame, [h = driver.handle, state, scope] {
    scope->interrupt = nullptr;  // it may hold on to the dying loop's objects
    if (state->try_claim()) {
      state->set_error(std::make_exception_ptr(TaskCancelled("the event loop was destroyed before the task finished")));
      state->publish();
    }
    h.destroy();
  });
  state->on_ready([roots, frame] { roots->remove(frame); });
  boost::asio::post(*loop.io, [h = driver.handle] { h.resume(); });
  return TaskHandle<T>(Future<T>(state), std::move(scope), loop.anchor);
}

// co_await current_context{}: the calling task's context, without suspending.
struct current_context {
  TaskContext context;
  bool await_ready() const noexcept { return false; }
  template <InTask P>
  bool await_suspend(std::coroutine_handle<P> h) noexcept {
    context = h.promise();
    return false;
  }
  TaskContext await_resume() const noexcept { return context; }
};
}  // namespace detail

template <class T>
TaskHandle<T> EventLoop::create_task(Task<T> task) {
  return detail::start_task(context_, std::move(task), std::make_shared<detail::CancelScope>());
}

template <class T>
T EventLoop::run_until_complete(Task<T> task) {
  TaskHandle<T> handle = create_task(std::move(task));
  auto work = boost::asio::make_work_guard(io_);
  io_.restart();
  detail::InterruptWatch interrupt(io_, handle.scope());
  while (!handle.done() && run_one()) {
  }
  if (interrupt.count() > 0 && (!handle.done() || dynamic_cast_error<TaskCancelled>(handle.future())))
    throw KeyboardInterrupt("interrupted by SIGINT (Ctrl-C): the main task was cancelled");
  if (!handle.done()) throw Error("run_until_complete: the loop was stopped before the task finished");
  return handle.future().get();
}

// co_await procpool::sleep(d): suspends the task for d on its loop's timer.
class sleep {
 public:
  template <class Rep, class Period>
  explicit sleep(std::chrono::duration<Rep, Period> d) : delay_(detail::clock_duration(d)) {}
  bool await_ready() const noexcept { return false; }
  template <detail::InTask P>
  bool await_suspend(std::coroutine_handle<P> h) {
    scope_ = h.promise().scope;
    if (scope_ && scope_->cancelled) return false;
    auto timer = std::make_shared<boost::asio::steady_timer>(*h.promise().io, delay_);
    auto once = std::make_shared<detail::ResumeOnce>(h.promise().anchor, h);
    // Weak: the scope may outlive the loop (a TaskHandle kept after it), and
    // a timer must not outlive its io_context. The pending wait owns it.
    if (scope_)
      scope_->interrupt = [weak = std::weak_ptr(timer)] {
        if (auto t = weak.lock()) t->cancel();  // its handler resumes the task
      };
    timer->async_wait([once, timer](const boost::system::error_code&) { once->resume_here(); });
    return true;
  }
  void await_resume() {
    if (!scope_) return;
    scope_->interrupt = nullptr;
    if (scope_->cancelled) {
      scope_->cancelled = false;
      throw TaskCancelled("the task was cancelled");
    }
  }

 private:
  std::chrono::steady_clock::duration delay_;
  std::shared_ptr<detail::CancelScope> scope_;
};

}  // namespace procpool
