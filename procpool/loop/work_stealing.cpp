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
// millisecond is worth not waiting behind. A worker that has not begun
// its front call kStealRecheck after a look first saw it so (stopped from
// outside, a frozen cgroup, no CPU) loses the calls behind the front too:
// concurrent.futures' workers, feeding from one queue, would hold only the
// one call each.
#include <procpool/loop/pool_core.hpp>

#include <boost/asio/post.hpp>

#include <algorithm>

namespace procpool::detail {

namespace {
using Clock = std::chrono::steady_clock;

// A call behind the front that may move: not withdrawn (a steal's
// placeholder, a cancelled call, a raced probe) and not settled.
bool movable(const TaskRecord& t) { return !t.state->place.withdrawn && !t.state->claimed(); }

bool holds_queued_calls(const WorkerSlot& s) {
  if (!s.usable()) return false;
  for (size_t i = s.assigned.size(); i-- > 1;)  // newest first: new calls come after placeholders
    if (movable(s.assigned[i])) return true;
  return false;
}

// Nothing to do and able to start on a call now: its start (initializer
// included) is over, and max_tasks_per_child leaves it one more. The
// worker's word (ready), read as a hint: a forged one only brings it calls.
bool idle(const WorkerSlot& s) {
  return s.usable() && s.assigned.empty() && s.calls_left > 0 &&
         s.segment->control().ready.load(std::memory_order_acquire) != 0;
}
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
      // Out of memory: what was taken back is queued (steal_locked); the
      // next worker to fall idle, or the watchdog, looks again.
      wait.reset();
    }
    steal_due_ = wait.has_value();
  }
  publish(out);
}

std::optional<Clock::duration> PoolCore::steal_locked(Published& out) {
  dispatch_locked(out);  // calls in the queue first: a worker with room takes them
  auto idle_workers =
      static_cast<size_t>(std::count_if(slots_.begin(), slots_.end(), [](auto& s) { return idle(*s); }));
  if (!pending_.empty() || idle_workers == 0) return std::nullopt;
  // As many as the idle workers take at once: more would wait in the
  // queue, where a paced dispatch could hand some back to the worker they
  // left. The rest move at a later look.
  std::vector<TaskRecord> moved;
  moved.reserve(idle_workers * prefetch_);  // take_back_locked may not allocate
  auto now = Clock::now();
  auto now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  std::optional<Clock::duration> wait;
  auto look_again = [&](Clock::duration after) { wait = wait ? std::min(*wait, after) : after; };
  try {
    for (auto& slot : slots_) {
      if (!holds_queued_calls(*slot)) continue;
      ControlBlock& control = slot->segment->control();
      // Acquire: pairs with the worker's release store of `started`, which
      // follows its store of call_began_ns (CallPace).
      uint64_t started = control.started.load(std::memory_order_acquire);
      Clock::duration waited{};  // how long its queued calls have waited for the one ahead
      if (started == slot->answered + 1) {
        // The worker's word, so compared without trusting it: a start in
        // the future counts as just now.
        uint64_t began = control.call_began_ns.load(std::memory_order_relaxed);
        if (now_ns > 0 && began < static_cast<uint64_t>(now_ns))
          waited = std::chrono::nanoseconds(static_cast<uint64_t>(now_ns) - began);
      } else if (started == slot->answered && control.ready.load(std::memory_order_acquire) == 0) {
        waited = now - slot->forked_at;  // still starting (an initializer, a spawn): it holds calls all the while
      } else if (started == slot->answered) {
        // About to begin its front (the answer before it was just taken),
        // or not running at all (stopped from outside, frozen, starved of
        // CPU): a look kStealRecheck later finds which. Still not begun
        // then, the calls behind its front have waited that long, and move
        // as they would behind a long call. (The front itself stays: only
        // stopping the worker could take it back, which its deadline does.)
        if (slot->unbegun_pid != slot->pid || slot->unbegun_answered != slot->answered) {
          slot->unbegun_pid = slot->pid;
          slot->unbegun_answered = slot->answered;
          slot->unbegun_since = now;
        }
        waited = now - slot->unbegun_since;
        if (waited < kStealRecheck) {
          look_again(kStealRecheck - waited);
          continue;
        }
      }  // else past its front, with answers written since the drain: soon read
      if (waited < kStealAfter) {
        look_again(kStealAfter - waited);
        continue;
      }
      size_t before = moved.size();
      steal_from_locked(*slot, moved);
      // Stopped at the idle workers' room with more to move: soon again. (A
      // call that cannot be proven now waits for the watchdog's look.)
      if (moved.size() > before && moved.size() == moved.capacity() && holds_queued_calls(*slot))
        look_again(kStealAfter);
    }
  } catch (...) {
    requeue_stolen_locked(moved, out);  // what was taken back is not lost
    throw;
  }
  requeue_stolen_locked(moved, out);
  return wait;
}

void PoolCore::steal_from_locked(WorkerSlot& slot, std::vector<TaskRecord>& moved) {
  struct Recount {
    WorkerSlot& slot;
    ~Recount() { slot.count_calls(); }
  } recount{slot};
  // The oldest first: they have waited longest. Each index is proven on
  // its own, so one that cannot be taken does not stop the rest.
  for (size_t i = 1; i < slot.assigned.size() && moved.size() < moved.capacity();) {
    TaskRecord& task = slot.assigned[i];
    if (!movable(task)) {
      ++i;
      continue;
    }
    bool unsent = i > slot.sent || (i == slot.sent && slot.sent_bytes == 0 && !slot.handles_sent);
    if (unsent) {
      moved.push_back(std::move(task));  // within the capacity reserved: no allocation
      moved.back().state->place.slot = -1;
      slot.assigned.erase(slot.assigned.begin() + static_cast<std::ptrdiff_t>(i));
      ++slot.calls_left;  // never reached the worker (max_tasks_per_child)
      continue;           // the next call is at i now
    }
    if (i < slot.sent) (void)take_back_locked(slot, i, moved);  // else partly written: the rest must follow
    ++i;
  }
}

void PoolCore::requeue_stolen_locked(std::vector<TaskRecord>& moved, Published& out) {
  if (moved.empty()) return;
  counters_.stolen.fetch_add(moved.size(), std::memory_order_relaxed);
  try {
    // At the head, in their order: they were submitted before what waits there.
    pending_.insert(pending_.begin(), std::make_move_iterator(moved.begin()), std::make_move_iterator(moved.end()));
  } catch (...) {
    // Out of memory (the queue is unchanged): they fail with it, rather
    // than being lost.
    auto error = std::current_exception();
    for (auto& t : moved)
      if (t.state->try_claim()) {
        t.state->set_error(error);
        out.push_back(t.state);
      }
    moved.clear();
    return;
  }
  moved.clear();
  dispatch_locked(out);
}

}  // namespace procpool::detail
