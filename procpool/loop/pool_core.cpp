// SPDX-License-Identifier: MIT
#include <procpool/loop/pool_core.hpp>

#include <boost/asio/post.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bit>
#include <cstdio>
#include <cstring>
#include <future>

#include <procpool/common/backtrace.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/common/function_registry.hpp>
#include <procpool/common/type_name.hpp>
#include <procpool/worker/worker_process.hpp>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace procpool::detail {
namespace {

int send_signal(int pidfd, int sig) noexcept { return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0)); }

// Reaps the worker behind `pidfd`; fills signal (or 0) and exit code (or
// -1). Both stay unknown (0 and -1) when the status was taken elsewhere: the
// application ignores SIGCHLD, or reaps every child itself.
void reap(int pidfd, int& signal, int& exit_code) noexcept {
  siginfo_t info{};
  int r;
  while ((r = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED)) != 0 &&
         errno == EINTR) {
  }
  signal = r == 0 && (info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED) ? info.si_status : 0;
  exit_code = r == 0 && info.si_code == CLD_EXITED ? info.si_status : -1;
}

}  // namespace

PoolCore::PoolCore(PoolOptions options) : options_(options), work_(io_.get_executor()) {
  if (options_.workers == 0) options_.workers = std::max(1u, std::thread::hardware_concurrency());
  options_.ring_bytes = std::bit_ceil(std::max<size_t>(options_.ring_bytes, 4096));
  options_.max_tasks_per_worker = std::max<size_t>(options_.max_tasks_per_worker, 1);
}

PoolCore::~PoolCore() { shutdown(false); }

void PoolCore::start() {
  worker_config_ = WorkerConfig{options_.max_message_bytes, options_.worker_spin, -1, options_.close_fds};
  for (size_t i = 0; i < options_.workers; ++i) {
    auto slot = std::make_unique<WorkerSlot>();
    slot->index = i;
    // One doorbell per worker, for the slot's lifetime: a worker holds only
    // its own, so it can neither ring nor silence another's.
    int efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd < 0) throw Error(std::string("cannot create a worker's doorbell: eventfd: ") + std::strerror(errno));
    slot->doorbell = std::make_unique<boost::asio::posix::stream_descriptor>(io_, efd);
    slots_.push_back(std::move(slot));
  }
  FunctionRegistry::instance().pool_started();
  counted_in_registry_ = true;
  reactor_ = std::thread([this] {
    // A handler that throws must not take the host down with it: report it
    // and keep the reactor going (Asio allows run() again after a throw).
    for (;;) {
      try {
        io_.run();
        break;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "procpool: the pool's reactor caught %s: %s\n", demangle(typeid(e).name()).c_str(), e.what());
      } catch (...) {
        std::fprintf(stderr, "procpool: the pool's reactor caught a non-standard exception\n");
      }
    }
    // Shut down from this thread (say, the pool destroyed in a callback):
    // finish here, now that no handler of ours is on the stack.
    if (auto self = std::move(finish_on_reactor_)) {
      std::lock_guard once(shutdown_mutex_);
      reactor_.detach();
      finish_shutdown();
    }
  });
  reactor_id_ = reactor_.get_id();

  std::promise<void> started;
  boost::asio::post(io_, [this, &started] {
    try {
      std::scoped_lock lock(drain_mutex_, dispatch_mutex_);
      for (auto& slot : slots_) spawn(*slot);
      accepting_ = true;
      started.set_value();
    } catch (...) {
      started.set_exception(std::current_exception());
    }
    for (auto& slot : slots_) arm_doorbell(*slot);
  });
  try {
    started.get_future().get();
  } catch (...) {
    shutdown(false);
    throw;
  }
}

std::vector<pid_t> PoolCore::worker_pids() {
  std::lock_guard lock(dispatch_mutex_);
  std::vector<pid_t> pids;
  for (auto& slot : slots_)
    if (slot->alive) pids.push_back(slot->pid);
  return pids;
}

const char* PoolCore::function_name(uint32_t id) const {
  const FunctionEntry* e = FunctionRegistry::instance().at(id);
  return e ? e->name.c_str() : "?";
}

// ---- workers: start, death, replacement (reactor thread, both locks held) ----

void PoolCore::spawn(WorkerSlot& slot) {
  slot.segment = std::make_unique<WorkerSegment>(options_.ring_bytes);
  slot.requests = slot.segment->request_ring();
  slot.responses = slot.segment->response_ring();
  // The reactor may be asleep when the first response comes: ask for the
  // doorbell from the start.
  announce_sleep(slot.segment->header().response.data_event);
  WorkerConfig config = worker_config_;
  config.doorbell_fd = slot.doorbell->native_handle();
  SpawnedWorker w = spawn_worker(*slot.segment, config);
  slot.pid = w.pid;
  slot.pidfd = std::make_unique<boost::asio::posix::stream_descriptor>(io_, w.pidfd);
  slot.alive = true;
  slot.sent = slot.sent_bytes = 0;
  slot.answered = 0;
  slot.have_header = false;
  slot.partial = ByteBuffer();
  slot.condemned.clear();
  slot.request_fault.clear();
  watch_death(slot);
}

void PoolCore::watch_death(WorkerSlot& slot) {
  slot.pidfd->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                         [this, &slot](const boost::system::error_code& ec) {
                           if (!ec) on_death(slot);
                         });
}

void PoolCore::on_death(WorkerSlot& slot) {
  Published out;
  std::exception_ptr cannot_start;
  {
    std::lock_guard drain(drain_mutex_);
    int sig = 0, code = -1;
    reap(slot.pidfd->native_handle(), sig, code);
    if (sig == 0 && code == -1) sig = slot.segment->control().crash_signal.load(std::memory_order_relaxed);
    // Answers the worker completed before it died are valid: take them.
    if (slot.condemned.empty()) drain_slot(slot, out);

    std::lock_guard dispatch(dispatch_mutex_);
    slot.alive = false;
    ControlBlock& control = slot.segment->control();
    uint64_t started = std::clamp<uint64_t>(control.started.load(std::memory_order_acquire), slot.answered,
                                            slot.answered + slot.sent);
    bool served = started > 0;
    if (started > slot.answered && !slot.assigned.empty()) {
      TaskRecord task = std::move(slot.assigned.front());
      slot.assigned.pop_front();
      std::exception_ptr error;
      if (!slot.condemned.empty() || !slot.request_fault.empty()) {
        const std::string& why = slot.condemned.empty() ? slot.request_fault : slot.condemned;
        error = std::make_exception_ptr(ProtocolError(slot.pid, function_name(task.function_id), why));
      } else {
        uint32_t frames = std::min<uint32_t>(control.crash_frame_count.load(std::memory_order_acquire), kMaxCrashFrames);
        std::string where = sig != 0 ? symbolize(control.crash_frames, static_cast<int>(frames)) : std::string();
        error = std::make_exception_ptr(WorkerCrashed(function_name(task.function_id), slot.pid, sig, code, where));
      }
      if (task.state->try_claim()) {
        task.state->set_error(error);
        out.push_back(task.state);
      }
    }
    // The rest never started: back to the head of the queue, in order.
    while (!slot.assigned.empty()) {
      pending_.push_front(std::move(slot.assigned.back()));
      slot.assigned.pop_back();
    }
    slot.sent = slot.sent_bytes = 0;
    slot.failed_starts = (!served && code == kExitSetupFailed) ? slot.failed_starts + 1 : 0;
    std::string setup_error(control.setup_error, strnlen(control.setup_error, sizeof control.setup_error));
    // A worker that fails its own set-up will fail it again: after three in
    // a row, stop forking them.
    if (slot.failed_starts >= 3)
      cannot_start = std::make_exception_ptr(
          Error("workers fail to start (" + (setup_error.empty() ? std::string("exit code 121") : setup_error) + ")"));
  }
  // The crashed call fails now, not after the replacement's fork.
  publish(out);
  out.clear();
  {
    std::scoped_lock lock(drain_mutex_, dispatch_mutex_);
    slot.pidfd.reset();  // after the publish: unmapping is not free
    slot.segment.reset();
    if (stopping_) return;
    if (cannot_start) {
      slot.retired = true;
      start_error_ = cannot_start;
      if (std::none_of(slots_.begin(), slots_.end(), [](auto& s) { return s->alive; }))
        fail_all_pending(cannot_start, out);
    } else {
      respawn_locked(slot, out);
    }
  }
  publish(out);
}

void PoolCore::respawn_locked(WorkerSlot& slot, Published& out) {
  std::exception_ptr error;
  try {
    spawn(slot);
    slot.fork_failures = 0;
  } catch (...) {
    error = std::current_exception();
  }
  if (!error) {
    dispatch_locked();
    return;
  }
  // With no worker left, queued calls cannot wait for one: fail them now.
  if (std::none_of(slots_.begin(), slots_.end(), [](auto& s) { return s->alive; })) fail_all_pending(error, out);
  // fork fails for passing reasons (EAGAIN, ENOMEM): try again, backing off.
  auto delay = std::chrono::milliseconds(std::min(1000, 50 << std::min(slot.fork_failures++, 5u)));
  slot.retry = std::make_unique<boost::asio::steady_timer>(io_, delay);
  slot.retry->async_wait([this, &slot](const boost::system::error_code& ec) {
    if (ec) return;
    Published later;
    {
      std::scoped_lock lock(drain_mutex_, dispatch_mutex_);
      if (stopping_ || slot.alive) return;
      respawn_locked(slot, later);
    }
    publish(later);
  });
}

void PoolCore::fail_all_pending(std::exception_ptr error, Published& out) {
  for (auto& task : pending_)
    if (task.state->try_claim()) {
      task.state->set_error(error);
      out.push_back(task.state);
    }
  pending_.clear();
}

// ---- the doorbell: the reactor's wake-up for responses and freed space ----

void PoolCore::arm_doorbell(WorkerSlot& slot) {
  slot.doorbell->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                            [this, &slot](const boost::system::error_code& ec) {
                              if (!ec) on_doorbell(slot);
                            });
}

void PoolCore::on_doorbell(WorkerSlot& rung) {
  uint64_t count;
  ssize_t r = ::read(rung.doorbell->native_handle(), &count, sizeof count);
  (void)r;
  do {
    Published out;
    {
      std::lock_guard drain(drain_mutex_);
      drain_locked(out);
    }
    {
      std::lock_guard dispatch(dispatch_mutex_);
      dispatch_locked();
    }
    publish(out);
  } while (request_doorbells());
  arm_doorbell(rung);
}

bool PoolCore::request_doorbells() {
  std::lock_guard drain(drain_mutex_);
  bool more = false;
  for (auto& slot : slots_) {
    if (!slot->alive || !slot->condemned.empty()) continue;
    announce_sleep(slot->segment->header().response.data_event);
    try {
      more |= slot->responses.readable() > 0;
    } catch (const RingCorrupt&) {
      more = true;  // the next drain condemns it
    }
  }
  return more;
}

void PoolCore::poll_responses() {
  Published out;
  {
    std::unique_lock drain(drain_mutex_, std::try_to_lock);
    if (!drain) return;
    drain_locked(out);
  }
  if (out.empty()) return;
  {
    std::lock_guard dispatch(dispatch_mutex_);
    dispatch_locked();
  }
  publish(out);
}

std::chrono::nanoseconds PoolCore::poll_budget(size_t request_bytes) const noexcept {
  // A large call costs at least two copies of its payload each way before
  // its answer can arrive; sleeping meanwhile would add a worker -> reactor
  // -> waiter relay of two wake-ups. So a waiter on a large call polls for
  // about as long as those copies take (0.5 ns a byte: ~2 GB/s), up to 2 ms.
  if (options_.host_spin.count() == 0) return {};
  auto copies = std::chrono::nanoseconds(static_cast<long long>(request_bytes / 2));
  return std::max<std::chrono::nanoseconds>(options_.host_spin, std::min<std::chrono::nanoseconds>(copies, std::chrono::milliseconds(2)));
}

void PoolCore::publish(Published& states) {
  for (auto& s : states) s->publish();
}

// ---- dispatch ----

void PoolCore::submit(ByteBuffer frame, uint32_t function_id, std::shared_ptr<StateBase> state) {
  std::unique_lock lock(dispatch_mutex_);
  if (!accepting_) {
    lock.unlock();
    state->settle_error(std::make_exception_ptr(PoolShutdown("the pool is shut down; no new calls are accepted")));
    return;
  }
  if (std::all_of(slots_.begin(), slots_.end(), [](auto& s) { return s->retired; })) {
    lock.unlock();
    state->settle_error(start_error_);  // no worker will ever take it
    return;
  }
  FrameHeader header{kFrameMagic, static_cast<uint32_t>(FrameKind::Call), ++next_task_,
                     frame.size() - sizeof(FrameHeader)};
  std::memcpy(frame.data(), &header, sizeof header);
  state->set_poller(weak_from_this(), frame.size());
  pending_.push_back(TaskRecord{header.task_id, function_id, std::move(state), std::move(frame)});
  dispatch_locked();
}

void PoolCore::dispatch_locked() {
  auto usable = [](const WorkerSlot& s) { return s.alive && s.condemned.empty() && s.request_fault.empty(); };
  while (!pending_.empty()) {
    WorkerSlot* best = nullptr;
    for (auto& slot : slots_)
      if (usable(*slot) && slot->assigned.size() < options_.max_tasks_per_worker &&
          (!best || slot->assigned.size() < best->assigned.size()))
        best = slot.get();
    if (!best) break;
    best->assigned.push_back(std::move(pending_.front()));
    pending_.pop_front();
  }
  for (auto& slot : slots_)
    if (usable(*slot) && slot->sent < slot->assigned.size()) pump_locked(*slot);
}

void PoolCore::pump_locked(WorkerSlot& slot) {
  bool wrote = false;
  try {
    while (slot.sent < slot.assigned.size()) {
      ByteBuffer& frame = slot.assigned[slot.sent].frame;
      size_t k = slot.requests.write_some(frame.data() + slot.sent_bytes, frame.size() - slot.sent_bytes);
      wrote |= k > 0;
      slot.sent_bytes += k;
      if (slot.sent_bytes == frame.size()) {
        ++slot.sent;
        slot.sent_bytes = 0;
        continue;
      }
      // The ring is full: the worker rings the doorbell when it frees space.
      auto& event = slot.segment->header().request.space_event;
      announce_sleep(event);
      if (slot.requests.free_space(1) == 0) break;
      withdraw_sleep(event);
    }
  } catch (const RingCorrupt& e) {
    // The worker wrote a tail that cannot be: stop it; its death handler
    // fails the call it was running.
    slot.request_fault = std::string("it wrote ") + e.what();  // e.g. a forged tail
    send_signal(slot.pidfd->native_handle(), SIGKILL);
    return;
  }
  if (wrote && slot.requests.publish()) futex_wake_all(slot.segment->header().request.data_event);
}

// ---- shutdown ----

void PoolCore::shutdown(bool wait) {
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
  for (auto& s : outstanding) s->wait();
  {
    std::scoped_lock lock(drain_mutex_, dispatch_mutex_);
    stopping_ = true;
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
      boost::asio::post(io_, [this] { run_queued_callbacks(); });
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
      if (slot->assigned.empty() && request_stop(*slot)) futex_wake_all(slot->segment->header().request.data_event);
      else send_signal(pidfd, SIGTERM);
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

  std::scoped_lock lock(drain_mutex_, dispatch_mutex_);
  for (auto& slot : slots_) {
    if (!slot->alive) continue;
    send_signal(slot->pidfd->native_handle(), SIGKILL);  // a no-op for one that already exited
    int sig = 0, code = 0;
    reap(slot->pidfd->native_handle(), sig, code);
    slot->alive = false;
  }
  auto shut = std::make_exception_ptr(PoolShutdown("the pool was shut down before this call finished"));
  fail_all_pending(shut, out);
  for (auto& slot : slots_) {
    for (auto& task : slot->assigned)
      if (task.state->try_claim()) {
        task.state->set_error(shut);
        out.push_back(task.state);
      }
    slot->assigned.clear();
    slot->retry.reset();
    slot->pidfd.reset();
    slot->segment.reset();
    slot->doorbell.reset();
  }
}

bool PoolCore::request_stop(WorkerSlot& slot) noexcept {
  FrameHeader stop{kFrameMagic, static_cast<uint32_t>(FrameKind::Stop), 0, 0};
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
