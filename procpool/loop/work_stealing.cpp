// SPDX-License-Identifier: MIT
// Work stealing. A worker is handed calls ahead (prefetch_per_worker), and
// each waits in its ring for the calls before it. When the call at the
// front runs long while another worker has nothing to do, the calls queued
// behind it are taken back and go to the pool's queue, from which dispatch
// gives them to the idle worker. A call then waits behind a long one for
// about kStealAfter at most once another worker is free, as it would in
// concurrent.futures, whose workers take calls from one shared queue.
//
// Taking a call back is cancel()'s withdrawal (cancel.cpp): a call none of
// whose bytes are in the ring leaves `assigned` (case 2); one in the ring
// is appended to the worker's CancelList where the host can prove the
// worker will see the entry (case 3), and goes to the queue under a new
// task id, while a claimed placeholder takes the worker's Skipped answer.
// A call the worker races (it begins the call as the host withdraws it)
// stays with it: its WithdrawalProbe passes on whatever the worker answers,
// and sends the call again if the answer is Skipped. No call runs twice.
//
// When. A worker that runs out of calls (its last answer taken, or a new
// process in its slot) while the pool's queue is empty and another worker
// holds calls behind its front posts on_steal to the reactor, once
// (steal_due_). Only dispatch puts a call behind another, and it says so
// (calls_queued_): until it does, a worker falling idle looks no further.
// On the reactor, with both locks held and the rings drained, each such
// worker whose front call has begun (its `started` count is one past
// the answers read: no answer of a later call is waiting to be read) has
// its queued calls moved if the front began kStealAfter ago or more
// (ControlBlock::call_began_ns); otherwise the reactor looks again when the
// first of them will be due (a timer), for as long as a worker is idle and
// another holds queued calls. The watchdog looks too (every 100 ms while
// calls are held): a worker whose calls were all cancelled fell idle
// without an answer.
//
// Why wait kStealAfter: moving a call costs the victim a Skipped answer and
// the idle worker a wake-up, microseconds each. Calls of microseconds
// drain from a queue long before their front has run a millisecond, so a
// burst of short calls moves nothing, and two workers that take turns
// falling idle do not pass calls back and forth; a call that has run a
// millisecond is worth not waiting behind.
#include <procpool/loop/pool_core.hpp>

#include <boost/asio/post.hpp>

#include <algorithm>

namespace procpool::detail {

namespace {
using Clock = std::chrono::steady_clock;

// Worth a look: calls queued behind its front, the newest not withdrawn (a
// steal leaves placeholders behind a front; new calls go after them).
bool holds_queued_calls(const WorkerSlot& s) {
  return s.usable() && s.assigned.size() > 1 && !s.assigned.back().state->place.withdrawn;
}

bool idle(const WorkerSlot& s) { return s.usable() && s.assigned.empty() && s.calls_left > 0; }
}  // namespace

void PoolCore::note_idle_slow() {
  if (std::none_of(slots_.begin(), slots_.end(), [](auto& s) { return holds_queued_calls(*s); })) {
    calls_queued_ = false;  // until dispatch queues a call behind another
    return;
  }
  if (stopping_ || std::none_of(slots_.begin(), slots_.end(), [](auto& s) { return idle(*s); })) return;
  steal_due_ = true;
  try {
    boost::asio::post(io_, [weak = weak_from_this()] {
      if (auto self = weak.lock()) self->on_steal();
    });
  } catch (...) {
    steal_due_ = false;  // out of memory: the next worker to fall idle, or the watchdog, tries again
  }
}

void PoolCore::on_steal() {
  Published out;
  {
    std::lock_guard drain(drain_mutex_);
    if (stopping_) return;
    drain_locked(out);  // answers already written: their workers may be idle, or past their front
    std::lock_guard dispatch(dispatch_mutex_);
    std::optional<Clock::duration> wait;
    try {
      wait = steal_locked(out);
      if (wait) start_timer(steal_timer_, std::chrono::ceil<std::chrono::microseconds>(*wait), &PoolCore::on_steal);
    } catch (...) {
      // Out of memory: what was moved is queued and dispatched; the next
      // worker to fall idle, or the watchdog, looks again.
      wait.reset();
    }
    steal_due_ = wait.has_value();
  }
  publish(out);
}

std::optional<Clock::duration> PoolCore::steal_locked(Published& out) {
  dispatch_locked(out);  // calls in the queue first: a worker with room takes them
  if (!pending_.empty() || std::none_of(slots_.begin(), slots_.end(), [](auto& s) { return idle(*s); }))
    return std::nullopt;
  auto now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
  std::optional<Clock::duration> wait;
  size_t moved = 0;
  for (auto& slot : slots_) {
    if (!holds_queued_calls(*slot)) continue;
    ControlBlock& control = slot->segment->control();
    Clock::duration ran{};
    // Acquire: pairs with the worker's release store of `started`, which
    // follows its store of call_began_ns (CallPace).
    if (control.started.load(std::memory_order_acquire) == slot->answered + 1) {
      // The worker's word, so compared without trusting it: one from the
      // future counts as just begun.
      uint64_t began = control.call_began_ns.load(std::memory_order_relaxed);
      if (now_ns > 0 && began < static_cast<uint64_t>(now_ns))
        ran = std::chrono::nanoseconds(static_cast<uint64_t>(now_ns) - began);
      if (ran >= kStealAfter) {
        moved += steal_from_locked(*slot);
        continue;
      }
    }
    // Its front has yet to begin, or run long enough, or the worker is
    // past it with answers unread: looked at again.
    Clock::duration left = kStealAfter - ran;
    wait = wait ? std::min(*wait, left) : left;
  }
  if (moved > 0) {
    counters_.stolen.fetch_add(moved, std::memory_order_relaxed);
    dispatch_locked(out);
  }
  return wait;
}

size_t PoolCore::steal_from_locked(WorkerSlot& slot) {
  size_t moved = 0;
  // From the newest: each goes to the head of the queue, so they keep
  // their order there.
  for (size_t i = slot.assigned.size() - 1; i >= 1; --i) {
    TaskRecord& task = slot.assigned[i];
    if (task.state->place.withdrawn || task.state->claimed()) continue;  // a placeholder, or cancelled
    bool unsent = i > slot.sent || (i == slot.sent && slot.sent_bytes == 0 && !slot.handles_sent);
    if (unsent) {
      pending_.push_front(std::move(task));  // nothing happens if this throws
      slot.assigned.erase(slot.assigned.begin() + static_cast<std::ptrdiff_t>(i));
      ++slot.calls_left;  // never reached the worker (max_tasks_per_child)
      pending_.front().state->place.slot = -1;
      ++moved;
      continue;
    }
    if (i == slot.sent) continue;  // partly written: the rest of it must follow
    // Not proven (the worker is past the call before it, or its CancelList
    // is full), or raced: no call before this one can be taken either.
    if (!take_back_locked(slot, i)) break;
    ++moved;
  }
  slot.count_calls();
  return moved;
}

}  // namespace procpool::detail
