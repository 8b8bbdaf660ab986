// SPDX-License-Identifier: MIT
// Workers: fork, death, replacement (on the reactor thread).
#include <procpool/loop/pool_core.hpp>

#include <signal.h>

#include <cstring>

#include <procpool/common/backtrace.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/common/handle_channel.hpp>
#include <procpool/worker/pidfd.hpp>
#include <procpool/worker/worker_process.hpp>

namespace procpool::detail {

void PoolCore::spawn(WorkerSlot& slot) {
  slot.segment = std::make_unique<WorkerSegment>(options_.ring_bytes);
  slot.requests = slot.segment->request_ring();
  slot.responses = slot.segment->response_ring();
  // Its doorbell is armed when it is given its first call
  // (expect_answers_locked), not before: it has nothing to ring for.
  WorkerConfig config = worker_config_;
  config.doorbell_fd = slot.doorbell->native_handle();
  HandleSockets sockets = make_handle_sockets();
  UniqueFd worker_end(sockets.worker);
  slot.handle_socket.reset(sockets.host);  // the previous process's channel, if any, goes
  config.handle_socket = worker_end.get();
  SpawnedWorker w = spawn_worker(*slot.segment, config);
  worker_end.reset();
  slot.pid = w.pid;
  slot.pidfd = std::make_unique<boost::asio::posix::stream_descriptor>(io_, w.pidfd);
  slot.alive = true;
  slot.sent = slot.sent_bytes = 0;
  slot.handles_sent = false;
  slot.answered = 0;
  slot.forget_answer();
  slot.condemned.clear();
  slot.request_fault.clear();
  watch_death(slot);
}

void PoolCore::watch_death(WorkerSlot& slot) {
  slot.pidfd->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                         [weak = weak_from_this(), &slot](const boost::system::error_code& ec) {
                           auto self = weak.lock();
                           if (!ec && self) self->on_death(slot);
                         });
}

void PoolCore::on_death(WorkerSlot& slot) {
  Published out;
  std::exception_ptr cannot_start;
  {
    std::lock_guard drain(drain_mutex_);
    if (stopping_ || !slot.alive) return;  // shutdown reaps it
    int sig = 0, code = -1;
    reap(slot.pidfd->native_handle(), sig, code);
    if (sig == 0 && code == -1) sig = slot.segment->control().crash_signal.load(std::memory_order_relaxed);
    // Answers the worker completed before it died are valid: take them.
    if (slot.condemned.empty()) drain_slot(slot, out, /*dead=*/true);
    slot.forget_answer();  // what is left of one will not come (nor its buffer be trimmed)

    std::lock_guard dispatch(dispatch_mutex_);
    slot.alive = false;
    ControlBlock& control = slot.segment->control();
    // A call counts as started once its header is in the ring: a worker
    // counts a call that streams in before the rest of it has arrived.
    bool front_reached = slot.sent > 0 || slot.sent_bytes >= sizeof(FrameHeader);
    uint64_t started = std::clamp<uint64_t>(control.started.load(std::memory_order_acquire), slot.answered,
                                            slot.answered + slot.sent + (slot.sent_bytes >= sizeof(FrameHeader)));
    bool served = started > 0;
    // A worker that broke the protocol is not believed about what it
    // started (it may have zeroed its count): the call it was given first
    // fails and is never sent again, lest it run twice.
    bool broke_protocol = !slot.request_fault.empty() || (!slot.condemned.empty() && slot.condemned_blames_front);
    if ((started > slot.answered || (broke_protocol && front_reached)) && !slot.assigned.empty()) {
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
      slot.assigned.back().state->place.slot = -1;
      pending_.push_front(std::move(slot.assigned.back()));
      slot.assigned.pop_back();
    }
    slot.count_calls();
    slot.sent = slot.sent_bytes = 0;
    slot.handles_sent = false;
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
    slot.handle_socket.reset();  // descriptors still in it are the dead worker's
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
    dispatch_locked(out);
    return;
  }
  // With no worker left, queued calls cannot wait for one: fail them now.
  if (std::none_of(slots_.begin(), slots_.end(), [](auto& s) { return s->alive; })) fail_all_pending(error, out);
  // fork fails for passing reasons (EAGAIN, ENOMEM): try again, backing off.
  auto delay = std::chrono::milliseconds(std::min(1000, 50 << std::min(slot.fork_failures++, 5u)));
  slot.retry = std::make_unique<boost::asio::steady_timer>(io_, delay);
  slot.retry->async_wait([weak = weak_from_this(), &slot](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self) return;
    Published later;
    {
      std::scoped_lock lock(self->drain_mutex_, self->dispatch_mutex_);
      if (self->stopping_ || slot.alive) return;
      self->respawn_locked(slot, later);
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

}  // namespace procpool::detail
