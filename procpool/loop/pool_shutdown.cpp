// SPDX-License-Identifier: MIT
// Every shutdown: stop accepting (and wake submitters blocked at
// max_pending), withdraw the calls not begun (cancel_futures), let the rest
// finish (waiting here, or, for wait = false, on the pool's own thread),
// then halt: stop the reactor, stop and reap the workers, settle what is
// left. And where settled callbacks run.
//
// Phases (phase_, guarded by shutdown_mutex_), in order only:
//   Open      accepting calls.
//   Draining  accepting_ is false; the calls already accepted go on. A
//             shutdown(wait = false) watches them (watch_drain): when the
//             last settles, the reactor halts the pool itself.
//   Halting   one thread (the first to call halt) owns the end: it sets
//             stopping_ and stops the io_context; the reactor thread, once
//             out of io_.run(), stops and reaps the workers and settles
//             what is left (finish_shutdown: the workers die with the
//             thread that forked them, so it must be the last to go), and
//             the halting thread joins it (unless it is the reactor). With
//             a user's io_context the halting thread finishes itself.
//             Anyone else who wants the end waits for Stopped (never on
//             the reactor thread, which cannot wait for itself).
//   Stopped   workers reaped, every call settled.
// shutdown_mutex_ is never held while waiting for calls, for the reactor or
// for workers, so the reactor's own halt (after wait = false) can always
// take it.
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
  if (limit.count() <= 0 || on_own_thread()) return halt(StopMode::Terminate);
  auto now = std::chrono::steady_clock::now();
  bool unbounded = limit >= std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::steady_clock::time_point::max() - now);
  shutdown(ShutdownOptions{.wait = true}, unbounded ? std::chrono::steady_clock::time_point::max() : now + limit);
}

void PoolCore::shutdown(ShutdownOptions how, std::chrono::steady_clock::time_point deadline) {
  bool own_thread = on_own_thread();
  {
    std::unique_lock once(shutdown_mutex_);
    if (phase_ >= Phase::Halting) {
      if (how.wait && !own_thread) await_stopped(once);
      return;
    }
    if (own_thread && how.wait)
      throw Error(
          "ProcessPool::shutdown(wait = true) cannot wait on the pool's own thread (from a then() callback "
          "or a coroutine the pool resumed); call it from another thread, or use shutdown({.wait = false}), "
          "terminate() or kill()");
    phase_ = Phase::Draining;
  }
  stop_accepting(how.cancel_futures);
  if (!how.wait) {
    {
      std::lock_guard once(shutdown_mutex_);
      if (std::exchange(drain_watched_, true)) return;
    }
    watch_drain();
    return;
  }
  for (auto& s : outstanding_calls()) {
    if (deadline == std::chrono::steady_clock::time_point::max()) s->wait();
    else if (!s->wait_until(deadline)) break;  // the rest fail with PoolShutdown as the workers are stopped
  }
  halt(StopMode::Terminate);
}

void PoolCore::stop_accepting(bool cancel_unstarted) {
  Published cancelled;
  {
    std::scoped_lock lock(drain_mutex_, dispatch_mutex_);
    accepting_ = false;
    if (cancel_unstarted) cancel_unstarted_locked(cancelled);
  }
  // After accepting_: a submitter woken here finds the pool closed, and
  // one that comes later is refused by the closed admission.
  if (backpressure_) backpressure_->close();
  publish(cancelled);
}

std::vector<std::shared_ptr<StateBase>> PoolCore::outstanding_calls() {
  std::vector<std::shared_ptr<StateBase>> calls;
  std::lock_guard dispatch(dispatch_mutex_);
  for (auto& t : pending_)
    if (!t.state->claimed()) calls.push_back(t.state);  // a claimed one was cancelled: dispatch drops it
  for (auto& slot : slots_)
    for (auto& t : slot->assigned)
      if (!t.state->ready()) calls.push_back(t.state);
  return calls;
}

void PoolCore::watch_drain() {
  // One count per call, plus one for this thread, so that calls settling
  // while the callbacks are added cannot end the count early.
  auto outstanding = outstanding_calls();
  auto left = std::make_shared<std::atomic<size_t>>(outstanding.size() + 1);
  auto settled_one = [left, weak = weak_from_this()] {
    if (left->fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    // The last one: the reactor halts the pool, out of the settling
    // thread's way (that may be a thread in get(), or a callback).
    if (auto self = weak.lock())
      boost::asio::post(self->io_, [weak] {
        if (auto core = weak.lock()) core->on_drained();
      });
  };
  for (auto& s : outstanding) s->on_ready_anywhere(settled_one);
  settled_one();
}

void PoolCore::on_drained() {
  // A call whose withdrawal lost its race with the worker and was skipped
  // is queued again under a new id (cancel.cpp) after the count was made:
  // watch again until none is left.
  if (!outstanding_calls().empty()) return watch_drain();
  halt(StopMode::Terminate);
}

void PoolCore::halt(StopMode mode) {
  bool own_thread = on_own_thread();
  std::unique_lock once(shutdown_mutex_);
  if (phase_ >= Phase::Halting) {
    if (!own_thread) await_stopped(once);
    return;
  }
  phase_ = Phase::Halting;
  once.unlock();
  stop_accepting(false);
  {
    std::scoped_lock lock(drain_mutex_, dispatch_mutex_);
    stopping_ = true;
  }
  if (!own_io_) {
    // The user's io_context goes on running: our handlers find stopping_
    // set, and the descriptors closed below cancel the waits still pending.
    return finish_shutdown(mode);
  }
  // The workers are stopped by the reactor thread, once io_.run() has
  // returned (finish_on_reactor): they were forked by it, and die with it
  // (PR_SET_PDEATHSIG), so it must outlive their Stop frames, SIGTERM and
  // grace. The core stays alive meanwhile through finish_on_reactor_.
  if (auto self = weak_from_this().lock()) {
    std::lock_guard relock(shutdown_mutex_);
    finish_on_reactor_ = std::move(self);
    finish_mode_ = mode;
  } else {
    // ~PoolCore of a pool that never halted: finish on this thread.
    work_.reset();
    io_.stop();
    join_reactor();
    return finish_shutdown(mode);
  }
  work_.reset();
  io_.stop();
  if (own_thread) return;  // the reactor cannot join itself: it finishes once this handler returns
  join_reactor();
}

void PoolCore::finish_on_reactor() {
  std::shared_ptr<PoolCore> self;
  {
    std::lock_guard once(shutdown_mutex_);
    self = std::move(finish_on_reactor_);
  }
  if (self) finish_shutdown(finish_mode_);
  // `self` may be the last reference: ~PoolCore then runs here, on the
  // reactor thread, and detaches it.
}

void PoolCore::await_stopped(std::unique_lock<std::mutex>& once) {
  stopped_cv_.wait(once, [&] { return phase_ == Phase::Stopped; });
  once.unlock();
  join_reactor();  // so that no thread of the pool outlives the call
}

void PoolCore::join_reactor() {
  std::lock_guard join(join_mutex_);
  if (reactor_.joinable() && std::this_thread::get_id() != reactor_id_) reactor_.join();
}

void PoolCore::finish_shutdown(StopMode mode) {
  {
    std::lock_guard lock(callbacks_mutex_);
    reactor_gone_ = true;
  }
  run_queued_callbacks();
  Published out;
  stop_workers(out, mode);
  run_queued_callbacks();  // any the forker thread published meanwhile
  if (counted_in_registry_) FunctionRegistry::instance().pool_stopped();
  {
    // Before the publish: a callback it runs here may call shutdown, which
    // must find the pool stopped rather than wait for this thread.
    std::lock_guard once(shutdown_mutex_);
    phase_ = Phase::Stopped;
  }
  stopped_cv_.notify_all();
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
    // No user code runs on the forker thread (a callback that destroyed
    // the pool there would wait for the thread's own join): finish_shutdown
    // runs these once it has joined it.
    if (std::this_thread::get_id() == forker_id_) {
      queued_callbacks_.push_back(std::move(callbacks));
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

void PoolCore::stop_workers(Published& out, StopMode mode) {
  {
    std::lock_guard drain(drain_mutex_);
    drain_locked(out);  // answers that arrived meanwhile still count
  }
  // The reactor has stopped and no call is accepted any more: only this
  // thread changes the slots now. The locks are held only while touching
  // them, not during the grace period. Terminate: a Stop frame or SIGTERM,
  // then SIGKILL to those still there after shutdown_grace; Kill: SIGKILL
  // at once. SIGKILL ends a worker whatever it does (SIGSTOPped, ignoring
  // SIGTERM, blocked in a system call), so neither waits longer than the grace.
  std::vector<pollfd> waiting;
  if (mode == StopMode::Terminate) {
    std::scoped_lock lock(drain_mutex_, dispatch_mutex_);
    for (auto& slot : slots_) {
      if (!slot->alive) continue;
      int pidfd = slot->pidfd->native_handle();
      // Idle workers get a Stop frame and exit cleanly; busy ones SIGTERM.
      if (slot->assigned.empty() && request_stop(slot->requests)) {
        futex_wake_all(slot->segment->header().request.data_event);
      } else {
        send_signal(pidfd, SIGTERM);
        ::kill(-slot->pid, SIGTERM);  // and what its tasks started, in its process group
      }
      waiting.push_back(pollfd{pidfd, POLLIN, 0});
    }
    // Spares are idle: a Stop frame each.
    for (auto& spare : spares_) {
      ByteRing requests = spare.segment->request_ring();
      if (request_stop(requests)) futex_wake_all(spare.segment->header().request.data_event);
      waiting.push_back(pollfd{spare.pidfd->native_handle(), POLLIN, 0});
    }
  }
  await_exits(waiting, options_.shutdown_grace);

  // SIGKILL to what is left, and to the workers being stopped (a deadline,
  // a cancel), which get no more grace.
  std::vector<pollfd> killed;
  {
    std::scoped_lock lock(drain_mutex_, dispatch_mutex_);
    for (auto& gone : stopping_workers_) {
      send_signal(gone.pidfd->native_handle(), SIGKILL);
      killed.push_back(pollfd{gone.pidfd->native_handle(), POLLIN, 0});
    }
    for (auto& spare : spares_) {
      send_signal(spare.pidfd->native_handle(), SIGKILL);
      kill_process_group(spare.pid);
      killed.push_back(pollfd{spare.pidfd->native_handle(), POLLIN, 0});
    }
    for (auto& slot : slots_) {
      if (!slot->alive) continue;
      send_signal(slot->pidfd->native_handle(), SIGKILL);  // a no-op for one that already exited
      kill_process_group(slot->pid);                       // before the reap frees its id
      killed.push_back(pollfd{slot->pidfd->native_handle(), POLLIN, 0});
    }
  }
  // The pidfds are non-blocking (the reactor waited on them): reap only
  // once each has exited. SIGKILL needs nothing from the worker, so this
  // is quick; the limit only bounds a worker stuck in the kernel (reap()
  // then waits for it).
  await_exits(killed, kReapLimit);
  std::vector<OutputLine> lines;   // what they wrote last, delivered once the locks are released
  std::list<ForkedWorker> spares;  // unmapped once the locks are released
  {
    std::scoped_lock lock(drain_mutex_, dispatch_mutex_);
    for (auto& spare : spares_) {
      int sig = 0, code = 0;
      bury(spare.pid, spare.pidfd->native_handle(), sig, code);
      if (spare.output) {
        auto rest = spare.output->finish();
        lines.insert(lines.end(), std::make_move_iterator(rest.begin()), std::make_move_iterator(rest.end()));
      }
    }
    spares.splice(spares.end(), spares_);
    for (auto it = stopping_workers_.begin(); it != stopping_workers_.end(); ++it) reap_stopping_locked(it, lines);
    stopping_workers_.clear();
    for (auto& slot : slots_) {
      if (!slot->alive) continue;
      int sig = 0, code = 0;
      bury(slot->pid, slot->pidfd->native_handle(), sig, code);
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
    steal_timer_.reset();
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
      slot->needs_process = false;
      slot->pidfd.reset();
      slot->segment.reset();
      slot->doorbell.reset();
      slot->handle_socket.reset();
      slot->output.reset();
    }
  }
  deliver_output(lines);
  // Last: the workers it forked died with it otherwise (PR_SET_PDEATHSIG),
  // before their Stop frame or grace. A fork it had begun is discarded by
  // it before it returns.
  stop_forker();
  sweeper_.stop();  // every worker is reaped: nothing is left to sweep
}

void PoolCore::await_exits(std::vector<pollfd>& pidfds, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (size_t left = pidfds.size(); left > 0;) {
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (ms <= 0 || ::poll(pidfds.data(), pidfds.size(), static_cast<int>(ms)) <= 0) break;
    for (auto& p : pidfds)
      if (p.fd >= 0 && p.revents) {
        p.fd = -1;  // exited; poll ignores it from now on
        --left;
      }
  }
}

bool PoolCore::request_stop(ByteRing& requests) noexcept {
  FrameHeader stop = make_frame_header(FrameKind::Stop, 0, 0);
  try {
    if (requests.free_space(sizeof stop) < sizeof stop) return false;
  } catch (const RingCorrupt&) {
    return false;  // a forged tail: it gets SIGTERM instead
  }
  requests.write_some(&stop, sizeof stop);
  requests.publish();
  return true;
}

}  // namespace procpool::detail
