// SPDX-License-Identifier: MIT
#pragma once
// What every procpool::Task coroutine carries, so that the things it awaits
// (pool futures, sleeps, other tasks) resume it on its loop's thread and can
// deliver a cancellation at the await point, as asyncio does.
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <coroutine>
#include <functional>
#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

namespace procpool::detail {

class Poller;

// One per task created on a loop (create_task, run_until_complete, each
// child of gather); shared by the coroutines it awaits inline. Only touched
// on the loop's thread.
struct CancelScope {
  bool cancelled = false;
  // Set by the awaitable the task is suspended in: arranges for it to be
  // resumed (by the loop, never inline) so that it throws TaskCancelled from
  // its await point.
  std::function<void()> interrupt;
  void cancel() {
    cancelled = true;
    if (auto wake = std::exchange(interrupt, nullptr)) wake();
  }
};

// Lets other threads post to a loop that may be gone: the loop clears `io`
// (under the mutex) before its io_context is destroyed.
struct LoopAnchor {
  std::mutex mutex;
  boost::asio::io_context* io = nullptr;
  // Pools whose calls tasks of this loop are suspended on (loop thread
  // only): while there are any, the loop polls their response rings for a
  // moment before it sleeps, as a thread blocked in Future::get() does.
  std::vector<std::pair<std::weak_ptr<Poller>, int>> awaited;
  void await_begin(const std::shared_ptr<Poller>& p) {
    for (auto& [w, n] : awaited)
      if (w.lock() == p) {
        ++n;
        return;
      }
    awaited.emplace_back(p, 1);
  }
  void await_end(const std::shared_ptr<Poller>& p) {
    for (size_t i = 0; i < awaited.size(); ++i)
      if (awaited[i].first.lock() == p && --awaited[i].second == 0) {
        awaited.erase(awaited.begin() + static_cast<std::ptrdiff_t>(i));
        return;
      }
  }
  template <class F>
  void post(F&& f) {
    std::lock_guard lock(mutex);
    if (io) boost::asio::post(*io, std::forward<F>(f));
  }
};

class RootTasks;

struct TaskContext {
  boost::asio::io_context* io = nullptr;  // use only on the loop's thread
  RootTasks* roots = nullptr;             // the loop's unfinished tasks
  std::shared_ptr<LoopAnchor> anchor;     // to reach the loop from other threads
  std::shared_ptr<CancelScope> scope;
};

template <class Promise>
concept InTask = std::is_base_of_v<TaskContext, Promise>;

// Resumes a suspended coroutine at most once, on its loop's thread, whichever
// of several events (completion, cancellation, timeout) comes first.
class ResumeOnce {
 public:
  ResumeOnce(std::shared_ptr<LoopAnchor> anchor, std::coroutine_handle<> h) : anchor_(std::move(anchor)), h_(h) {}
  // From any thread: posts the resumption (dropped if the loop is gone).
  static void post(const std::shared_ptr<ResumeOnce>& self) {
    self->anchor_->post([self] { self->resume_here(); });
  }
  // On the loop's thread.
  void resume_here() {
    if (std::exchange(done_, true)) return;
    h_.resume();
  }

 private:
  std::shared_ptr<LoopAnchor> anchor_;
  std::coroutine_handle<> h_;
  bool done_ = false;
};

}  // namespace procpool::detail
