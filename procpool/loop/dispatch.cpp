// SPDX-License-Identifier: MIT
// Sending calls to workers: a submitted call joins the pool's queue, goes
// to the least-loaded worker that has room (prefetch_per_worker, or its
// pace: paced_room), and is
// written into its request ring, its SharedBytes' descriptors first. All of
// it under dispatch_mutex_; see pool_core.hpp for the locks.
#include <procpool/loop/pool_core.hpp>

#include <sched.h>
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include <procpool/common/errno_text.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/common/handle_channel.hpp>
#include <procpool/worker/pidfd.hpp>

namespace procpool::detail {

void PoolCore::submit(ByteBuffer frame, HandleList handles, FrameKind kind, uint32_t function_id,
                      std::shared_ptr<StateBase> state, const CallOptions& call, Admission admission) {
  // A copy of the pool in a forked child: nothing of it may be touched
  // there, not even its locks (a thread of the parent may have held one).
  if (in_another_process()) [[unlikely]] {
    state->settle_error(std::make_exception_ptr(Error("cannot submit a call: " + why_not_here())));
    return;
  }
  // max_pending (backpressure.cpp): without it, this one branch is all the
  // hot path pays.
  if (backpressure_) [[unlikely]] {
    if (!admit(*state, function_id, admission)) return;
  }
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
  FrameHeader header = make_frame_header(kind, ++next_task_, frame.size() - sizeof(FrameHeader), handles.size());
  if (kind == FrameKind::Call && call.measure_usage.value_or(options_.measure_usage)) header.handles |= kMeasureUsage;
  std::memcpy(frame.data(), &header, sizeof header);
  // A call that waited for room already has its poller (set before its
  // Future was handed out, see ProcessPool::submit_when_room): set once.
  if (state->has_poller()) state->set_request_bytes(frame.size());
  else state->set_poller(weak_from_this(), frame.size());
  state->place =
      StateBase::PoolPlace{header.task_id, -1, false, 0, call.cancel_running.value_or(options_.cancel_running)};
  auto held = handles.empty() ? nullptr : std::make_unique<HandleList>(std::move(handles));
  auto timeout = std::max<int64_t>(call.timeout.value_or(options_.timeout).count(), 0);
  pending_.push_back(TaskRecord{header.task_id, function_id,
                                static_cast<uint32_t>(std::min<int64_t>(timeout, UINT32_MAX)), std::move(state),
                                std::move(frame), std::move(held)});
  counters_.submitted.store(counters_.submitted.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  if (!on_own_thread()) submitted_.store(submitted_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  Published refused;
  deferred_wakes_.defer = true;
  try {
    dispatch_locked(refused);
  } catch (...) {
    std::exchange(deferred_wakes_, DeferredWakes{}).wake_all();  // none may be left asleep
    throw;
  }
  DeferredWakes wakes = std::exchange(deferred_wakes_, DeferredWakes{});
  bool backlog = !pending_.empty();
  lock.unlock();
  wakes.wake_all();
  publish(refused);
  // Every worker has its fill of calls: the answers that have come in make
  // room for more. Taking them here, instead of leaving them for the
  // reactor, keeps a burst of submits on this thread (no wake-up of the
  // reactor per answer) and the workers fed. Not on the pool's own thread
  // (its callbacks would run nested in this submit; it drains anyway), and
  // not recursively: a callback that submits, run by this drain's publish,
  // leaves it to the others.
  thread_local bool draining = false;
  if (backlog && !draining && !on_own_thread()) {
    draining = true;
    struct Reset {
      ~Reset() { draining = false; }
    } reset;
    try {
      poll_responses();
    } catch (...) {
      // Out of memory while publishing others' answers: this call is queued
      // and its future is the caller's; the reactor drains what is left.
    }
  }
}

void PoolCore::DeferredWakes::wake_all() noexcept {
  for (size_t i = 0; i < count; ++i) futex_wake_all(*words[i]);
}

size_t PoolCore::paced_room(const WorkerSlot& slot) const noexcept {
  uint32_t ns = slot.segment->control().call_ns.load(std::memory_order_relaxed);
  if (ns == 0) return prefetch_;  // not measured yet
  auto calls = static_cast<size_t>(std::chrono::nanoseconds(kPacedPrefetchWork).count() / ns);
  return std::clamp(calls, prefetch_, kPacedPrefetchMost);  // paced: prefetch_ is 16
}

void PoolCore::dispatch_locked(Published& out) {
  // Each worker first gets up to prefetch_ calls; only calls still waiting
  // after that go to workers by their pace (paced_room), so a trickle of
  // calls never queues deep, and a worker's pace is read (a line it writes
  // at every call) only when a backlog is there to share.
  bool paced = false;
  while (!pending_.empty()) {
    WorkerSlot* best = nullptr;
    for (auto& slot : slots_)
      if (slot->usable() && slot->calls_left > 0 && slot->assigned.size() < (paced ? slot->room : prefetch_) &&
          (!best || slot->assigned.size() < best->assigned.size()))
        best = slot.get();
    if (!best) {
      if (paced || !paced_prefetch_) break;
      paced = true;
      for (auto& slot : slots_) {
        if (!slot->usable() || !(slot->room_stale || slot->answered - slot->room_read_at >= kRoomReadEvery)) continue;
        slot->room = paced_room(*slot);
        slot->room_read_at = slot->answered;
        slot->room_stale = false;
      }
      continue;
    }
    TaskRecord task = std::move(pending_.front());
    pending_.pop_front();
    if (task.state->claimed()) continue;  // cancelled while it waited here
    if (crash_loop_on_ && refuse_crash_looping_locked(task, out)) continue;
    task.state->place.slot = static_cast<int>(best->index);
    best->assigned.push_back(std::move(task));
    --best->calls_left;  // max_tasks_per_child (worker_slot.hpp)
    if (best->assigned.size() > 1) {
      best->count_calls();
      calls_queued_ = true;  // work stealing looks when a worker falls idle
    } else {
      best->count_calls(std::memory_order_seq_cst);
      best->room_stale = true;
      expect_answers_locked(*best);
    }
  }
  for (auto& slot : slots_)
    if (slot->usable() && slot->sent < slot->assigned.size()) pump_locked(*slot, out);
}

void PoolCore::expect_answers_locked(WorkerSlot& slot) {
  // The worker held no call, so its doorbell was left unarmed (arming one
  // is a read-modify-write on a line the worker reads at every answer, and
  // a thread that waits for each call would otherwise arm and withdraw it
  // around every call). Now it will answer: unless a thread polls or a
  // sweep is due, it must ring. Against end_polling(), which decrements
  // pollers_ and then reads calls_held, and a sweep's end, which clears
  // sweep_due_ and then reads calls_held: this stored calls_held and now
  // reads both, all seq_cst, so of each pair at least one side sees the
  // other and arms. A sweep's turn that does not read calls_held either
  // schedules another sweep, or leaves the arming to a poller it saw; that
  // poller's end_polling() takes the drain mutex after the sweep has
  // released it (the sweep saw it still polling), so its seq_cst read of
  // calls_held comes after the clear of sweep_due_, which came after this
  // thread's read of it, which came after this store. No answer can
  // precede this: the call is not in the ring yet.
  if (pollers_.load(std::memory_order_seq_cst) == 0 && !sweep_due_.load(std::memory_order_seq_cst))
    announce_sleep(slot.segment->header().response.data_event);
  if (!watchdog_due_.load(std::memory_order_seq_cst)) wake_watchdog();
}

void PoolCore::refuse_locked(WorkerSlot& slot, int err, Published& out) {
  TaskRecord task = std::move(slot.assigned[slot.sent]);  // none of it is in the ring
  slot.assigned.erase(slot.assigned.begin() + static_cast<std::ptrdiff_t>(slot.sent));
  slot.count_calls();
  ++slot.calls_left;  // never reached the worker
  task.state->place.slot = -1;
  if (!task.state->try_claim()) return;
  task.state->set_error(std::make_exception_ptr(
      Error(std::string("the call of '") + function_name(task.function_id) +
            "' could not be sent: passing its SharedBytes to the worker failed: sendmsg: " + detail::errno_text(err))));
  out.push_back(std::move(task.state));  // published by the caller, with no lock held
}

void PoolCore::pump_locked(WorkerSlot& slot, Published& out) {
  bool wrote = false;
  size_t first = slot.sent;
  try {
    while (slot.sent < slot.assigned.size()) {
      TaskRecord& task = slot.assigned[slot.sent];
      ByteBuffer& frame = task.frame;
      if (task.handles && !slot.handles_sent) {
        // The descriptors go first (once: a full ring may leave the frame
        // unwritten), so that the worker finds them when it reads the header.
        int err = send_handles(slot.handle_socket.get(), task.id, *task.handles);
        if (err == EAGAIN) break;  // the worker has yet to take those of calls ahead; their answers pump again
        // The worker is gone (its death handler re-sends this call to the replacement).
        if (err == EPIPE || err == ECONNRESET || err == ECONNREFUSED || err == ENOTCONN) break;
        if (err != 0) {
          refuse_locked(slot, err, out);  // the host's own limit (descriptors in flight, memory): this call fails
          continue;
        }
        slot.handles_sent = true;
      }
      size_t k = slot.requests.write_some(frame.data() + slot.sent_bytes, frame.size() - slot.sent_bytes);
      wrote |= k > 0;
      slot.sent_bytes += k;
      if (slot.sent_bytes == frame.size()) {
        ++slot.sent;
        slot.sent_bytes = 0;
        slot.handles_sent = false;
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
  if (!wrote) return;
  // Written only when it changed: the line stays in this CPU's cache.
  auto& host_cpu = slot.segment->header().host_cpu.cpu;
  if (int cpu = sched_getcpu(); host_cpu.load(std::memory_order_relaxed) != cpu)
    host_cpu.store(cpu, std::memory_order_relaxed);
  if (slot.requests.publish()) {
    auto& event = slot.segment->header().request.data_event;
    if (deferred_wakes_.defer && deferred_wakes_.count < deferred_wakes_.words.size())
      deferred_wakes_.words[deferred_wakes_.count++] = &event;
    else futex_wake_all(event);
    for (size_t i = first; i < std::min(slot.sent + 1, slot.assigned.size()); ++i)
      slot.assigned[i].state->note_woke_worker();
  }
  start_front_clock_locked(slot);  // after the publish: the worker cannot have begun before it
}

}  // namespace procpool::detail
