// SPDX-License-Identifier: MIT
#pragma once
// procpool::Task<T>: the coroutine type of the event loop.
//
// A Task is lazy: it runs when awaited (inline, in its awaiter's scope) or
// when handed to EventLoop::create_task / run_until_complete (as a task of
// its own). Its exception propagates to whoever awaits it. Everything it
// awaits resumes it on the loop's thread. A cancelled task sees
// procpool::TaskCancelled thrown from the await point it is suspended in.
#include <coroutine>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include <procpool/common/errors.hpp>
#include <procpool/loop/task_context.hpp>

namespace procpool {

template <class T = void>
class Task;

namespace detail {

class PromiseBase : public TaskContext {
 public:
  std::suspend_always initial_suspend() noexcept { return {}; }
  struct FinalAwaiter {
    bool await_ready() noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      auto next = h.promise().continuation_;
      return next ? next : std::noop_coroutine();
    }
    void await_resume() noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { error_ = std::current_exception(); }

  std::coroutine_handle<> continuation_;
  std::exception_ptr error_;
};

template <class T>
class TaskPromise final : public PromiseBase {
 public:
  Task<T> get_return_object() noexcept;
  template <class U>
  void return_value(U&& v) {
    value_.emplace(std::forward<U>(v));
  }
  T result() {
    if (error_) std::rethrow_exception(error_);
    return std::move(*value_);
  }

 private:
  std::optional<T> value_;
};

template <>
class TaskPromise<void> final : public PromiseBase {
 public:
  Task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void result() {
    if (error_) std::rethrow_exception(error_);
  }
};

}  // namespace detail

template <class T>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::TaskPromise<T>;
  using value_type = T;

  Task(Task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  Task& operator=(Task&& o) noexcept {
    if (this != &o) {
      if (h_) h_.destroy();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  ~Task() {
    if (h_) h_.destroy();
  }

  // Awaiting a task runs it inline: same loop, same cancellation scope.
  bool await_ready() const noexcept { return false; }
  template <detail::InTask P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> parent) noexcept {
    auto& child = h_.promise();
    child.io = parent.promise().io;
    child.anchor = parent.promise().anchor;
    child.roots = parent.promise().roots;
    child.scope = parent.promise().scope;
    child.continuation_ = parent;
    return h_;
  }
  T await_resume() { return h_.promise().result(); }

 private:
  friend class detail::TaskPromise<T>;
  explicit Task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  std::coroutine_handle<promise_type> h_;
};

template <class T>
Task<T> detail::TaskPromise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<TaskPromise<T>>::from_promise(*this));
}
inline Task<void> detail::TaskPromise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<TaskPromise<void>>::from_promise(*this));
}

}  // namespace procpool
