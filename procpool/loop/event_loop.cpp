// SPDX-License-Identifier: MIT
#include <procpool/loop/event_loop.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>

#include <csignal>

namespace procpool {

namespace detail {

struct InterruptWatch::Impl {
  Impl(boost::asio::io_context& io, std::shared_ptr<CancelScope> scope, int& count)
      : io(io), signals(io, SIGINT), scope(std::move(scope)), count(count) {}
  void arm() {
    signals.async_wait([this](const boost::system::error_code& ec, int) {
      if (ec) return;  // cancelled: this may be gone
      if (++count == 1) {
        scope->cancel();
        arm();
      } else {
        io.stop();
      }
    });
  }
  boost::asio::io_context& io;
  boost::asio::signal_set signals;
  std::shared_ptr<CancelScope> scope;
  int& count;
};

InterruptWatch::InterruptWatch(boost::asio::io_context& io, std::shared_ptr<CancelScope> scope)
    : impl_(std::make_unique<Impl>(io, std::move(scope), count_)) {
  impl_->arm();
}

InterruptWatch::~InterruptWatch() {
  boost::system::error_code ignored;
  impl_->signals.cancel(ignored);
  impl_->signals.clear(ignored);
}

}  // namespace detail

EventLoop::EventLoop() : anchor_(std::make_shared<detail::LoopAnchor>()) {
  anchor_->io = &io_;
  context_.io = &io_;
  context_.anchor = anchor_;
  context_.roots = &roots_;
}

EventLoop::~EventLoop() {
  {
    std::lock_guard lock(anchor_->mutex);
    anchor_->io = nullptr;  // from now on, posts from other threads are dropped
  }
  // Destroy the frames of the tasks that never finished (failing their
  // handles); the handlers still queued are destroyed, unrun, with io_.
  roots_.abandon_all();
}

bool EventLoop::run_one() {
  if (io_.poll_one() > 0) return true;
  if (io_.stopped()) return false;
  if (!anchor_->awaited.empty()) {
    // Like a thread blocked in Future::get(): a response that arrives within
    // the pool's host_spin costs no wake-up of this thread.
    std::vector<std::shared_ptr<detail::Poller>> pools;
    std::chrono::nanoseconds budget{0};
    for (auto& [weak, count] : anchor_->awaited)
      if (auto p = weak.lock()) {
        budget = std::max(budget, p->poll_budget(0));
        pools.push_back(std::move(p));
      }
    // Poll in short stretches inside PollingScopes (the pools' doorbells are
    // off meanwhile), and run handlers only between them: a task resumed
    // inside a scope could block, and with the doorbells off another
    // thread's call on that pool would then be heard by nobody.
    auto until = std::chrono::steady_clock::now() + budget;
    while (budget.count() > 0 && std::chrono::steady_clock::now() < until) {
      auto stretch = std::min(until, std::chrono::steady_clock::now() + std::chrono::microseconds(5));
      {
        std::vector<std::unique_ptr<detail::PollingScope>> polling;
        polling.reserve(pools.size());
        for (auto& p : pools) polling.push_back(std::make_unique<detail::PollingScope>(*p));
        bool took = false;
        while (!took && std::chrono::steady_clock::now() < stretch)
          for (auto& p : pools) took |= p->poll_responses();
      }
      if (io_.poll_one() > 0) return true;
    }
  }
  return io_.run_one() > 0;
}

void EventLoop::run_forever() {
  auto work = boost::asio::make_work_guard(io_);
  io_.restart();
  while (run_one()) {
  }
}

void EventLoop::stop() { io_.stop(); }

void EventLoop::call_soon(std::function<void()> fn) { anchor_->post(std::move(fn)); }

EventLoop::TimerHandle EventLoop::call_later(std::chrono::steady_clock::duration delay, std::function<void()> fn) {
  auto timer = std::make_shared<boost::asio::steady_timer>(io_, delay);
  timer->async_wait([timer, fn = std::move(fn)](const boost::system::error_code& ec) {
    if (!ec) fn();
  });
  return TimerHandle(timer);
}

double EventLoop::time() const noexcept {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

ThreadPool& EventLoop::default_executor() {
  std::lock_guard lock(default_executor_mutex_);
  if (!default_executor_) default_executor_ = std::make_unique<ThreadPool>();
  return *default_executor_;
}

}  // namespace procpool
