// SPDX-License-Identifier: MIT
// Shutdown: stop accepting, stop the reactor, stop and reap the workers,
// settle what is left; and where settled callbacks run.
#include <procpool/loop/pool_core.hpp>

#include <boost/asio/post.hpp>

#include <poll.h>
#include <signal.h>

#include <procpool/common/errors.hpp>
#include <procpool/common/function_registry.hpp>
#include <procpool/worker/pidfd.hpp>

namespace procpool::detail {

void PoolCore::shutdown_on_destroy() {
  auto limit = options_.destructor_wait;
  if (limit.count() <= 0 || on_own_thread()) return shutdown(false);
  auto now = std::chrono::steady_clock::now();
  bool unbounded = limit >= std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::steady_clock::time_point::max() - now);
  shutdown(true, unbounded ? std::chrono::steady_clock::time_point::max() : now + limit);
}

void PoolCore::shutdown(bool wait, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock once(shutdown_mutex_);
  if (stopped_ || deferred_) return;
  bool own_thread = on_own_thread();
  if (own_thread && wait)
    throw Error("ProcessPool::shutdown(wait = true) cannot wait on the pool's own thread (from a then() callback "
                "or a coroutine the pool resumed); call it from another thread, or use shutdown(false)");
  std::vector<std::shared_ptr<StateBase>> outstanding;
  {
    std::lock_guard dispatch(dispatch_mutex_);
    accepting_ = false;
    if (wait) {
      for (auto& t : pending_) outstanding.push_back(t.state);
      for (auto& slot : slots_)
        for (auto& t : slot->assigned) outstanding.push_back(t.state);
    }
  }
  for (auto& s : outstanding) {
    if (deadline == std::chrono::steady_clock::time_point::max()) s->wait();
    else if (!s->wait_until(deadline)) break;  // the rest fail with PoolShutdown below
  }
  {
    std::scoped_lock lock(drain_mutex_, dispatch_mutex_);
    stopping_ = true;
  }
  if (!own_io_) {
    // The user's io_context goes on running: our handlers find stopping_
    // set, and the descriptors closed below cancel the waits still pending.
    finish_shutdown();
    return;
  }
  work_.reset();
  io_.stop();
  if (own_thread) {
    // The reactor cannot join itself: it finishes once this handler returns.
    finish_on_reactor_ = shared_from_this();
    deferred_ = true;
    return;
  }
  if (reactor_.joinable()) reactor_.join();
  finish_shutdown();
}

void PoolCore::finish_shutdown() {
  {
    std::lock_guard lock(callbacks_mutex_);
    reactor_gone_ = true;
  }
  run_queued_callbacks();
  Published out;
  stop_workers(out);
  if (counted_in_registry_) FunctionRegistry::instance().pool_stopped();
  stopped_ = true;
  publish(out);
}

void PoolCore::run_callbacks(Callbacks callbacks) {
  if (on_own_thread()) return StateBase::run_each(callbacks);
  {
    std::lock_guard lock(callbacks_mutex_);
    if (!reactor_gone_) {
      queued_callbacks_.push_back(std::move(callbacks));
      boost::asio::post(io_, [weak = weak_from_this()] {
        if (auto self = weak.lock()) self->run_queued_callbacks();
      });
      return;
    }
  }
  StateBase::run_each(callbacks);  // the reactor is gone: run them here
}

void PoolCore::run_queued_callbacks() {
  std::vector<Callbacks> batch;
  {
    std::lock_guard lock(callbacks_mutex_);
    batch.swap(queued_callbacks_);
  }
  for (auto& callbacks : batch) StateBase::run_each(callbacks);
}

void PoolCore::stop_workers(Published& out) {
  {
    std::lock_guard drain(drain_mutex_);
    drain_locked(out);  // answers that arrived meanwhile still count
  }
  // The reactor has stopped and no call is accepted any more: only this
  // thread changes the slots now. The locks are held only while touching
  // them, not during the grace period.
  std::vector<pollfd> waiting;
  {
    std::scoped_lock lock(drain_mutex_, dispatch_mutex_);
    for (auto& slot : slots_) {
      if (!slot->alive) continue;
      int pidfd = slot->pidfd->native_handle();
      // Idle workers get a Stop frame and exit cleanly; busy ones SIGTERM.
      if (slot->assigned.empty() && request_stop(*slot)) {
        futex_wake_all(slot->segment->header().request.data_event);
      } else {
        send_signal(pidfd, SIGTERM);
        ::kill(-slot->pid, SIGTERM);  // and what its tasks started, in its process group
      }
      waiting.push_back(pollfd{pidfd, POLLIN, 0});
    }
  }
  auto deadline = std::chrono::steady_clock::now() + options_.shutdown_grace;
  for (size_t left = waiting.size(); left > 0;) {
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (ms <= 0 || ::poll(waiting.data(), waiting.size(), static_cast<int>(ms)) <= 0) break;
    for (auto& p : waiting)
      if (p.fd >= 0 && p.revents) {
        p.fd = -1;  // exited; poll ignores it from now on
        --left;
      }
  }

  std::vector<OutputLine> lines;  // what they wrote last, delivered once the locks are released
  {
    std::scoped_lock lock(drain_mutex_, dispatch_mutex_);
    // Workers already being stopped (a deadline, a cancel) get no more grace.
    for (auto it = stopping_workers_.begin(); it != stopping_workers_.end(); ++it) {
      send_signal(it->pidfd->native_handle(), SIGKILL);
      reap_stopping_locked(it, lines);
    }
    stopping_workers_.clear();
    for (auto& slot : slots_) {
      if (!slot->alive) continue;
      send_signal(slot->pidfd->native_handle(), SIGKILL);  // a no-op for one that already exited
      kill_process_group(slot->pid);                       // before the reap frees its id
      int sig = 0, code = 0;
      reap(slot->pidfd->native_handle(), sig, code);
      slot->alive = false;
      if (slot->output) {
        auto rest = slot->output->finish();
        lines.insert(lines.end(), std::make_move_iterator(rest.begin()), std::make_move_iterator(rest.end()));
      }
    }
    sweep_timer_.reset();  // a sweep or trim still queued finds stopping_ set
    trim_timer_.reset();
    watchdog_timer_.reset();
    deadline_timer_.reset();
    auto shut = std::make_exception_ptr(PoolShutdown("the pool was shut down before this call finished"));
    fail_all_pending(shut, out);
    for (auto& slot : slots_) {
      for (auto& task : slot->assigned)
        if (task.state->try_claim()) {
          task.state->set_error(shut);
          out.push_back(task.state);
        }
      slot->assigned.clear();
      slot->count_calls();
      slot->retry.reset();
      slot->pidfd.reset();
      slot->segment.reset();
      slot->doorbell.reset();
      slot->handle_socket.reset();
      slot->output.reset();
    }
  }
  deliver_output(lines);
}

bool PoolCore::request_stop(WorkerSlot& slot) noexcept {
  FrameHeader stop = make_frame_header(FrameKind::Stop, 0, 0);
  try {
    if (slot.requests.free_space(sizeof stop) < sizeof stop) return false;
  } catch (const RingCorrupt&) {
    return false;  // a forged tail: it gets SIGTERM instead
  }
  slot.requests.write_some(&stop, sizeof stop);
  slot.requests.publish();
  return true;
}

}  // namespace procpool::detail
