// SPDX-License-Identifier: MIT
#pragma once
// An in-process thread pool: the event loop's default executor (asyncio's
// `run_in_executor(None, ...)`), for blocking work that needs no isolation.
// Callables run on its threads; results come back as the same Future as
// the process pool's. An exception thrown by the callable settles the
// future with it, unchanged.
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include <procpool/common/errors.hpp>
#include <procpool/loop/future.hpp>

namespace procpool {

class ThreadPool {
 public:
  // 0 threads means one per CPU.
  explicit ThreadPool(size_t threads = 0);
  // Finishes the queued work, then joins the threads.
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Thread-safe. Copies (or moves) fn and args into the queue.
  template <class F, class... Args>
  auto submit(F&& fn, Args&&... args) -> Future<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>>;

  size_t size() const noexcept { return threads_.size(); }

 private:
  void post(std::function<void()> job);
  void run();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

template <class F, class... Args>
auto ThreadPool::submit(F&& fn, Args&&... args)
    -> Future<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>> {
  using R = std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>;
  auto state = std::make_shared<detail::SharedState<R>>();
  post([state, fn = std::forward<F>(fn), ... args = std::forward<Args>(args)]() mutable {
    if (!state->try_claim()) return;
    try {
      if constexpr (std::is_void_v<R>) std::invoke(std::move(fn), std::move(args)...);
      else state->set_value(std::invoke(std::move(fn), std::move(args)...));
    } catch (...) {
      state->set_error(std::current_exception());
    }
    state->publish();
  });
  return Future<R>(std::move(state));
}

}  // namespace procpool
