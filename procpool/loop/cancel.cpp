// SPDX-License-Identifier: MIT
// Future::cancel(): the host alone decides, at once, whether a call will end
// in TaskCancelled. cancel() returns true exactly when it settled the future
// with TaskCancelled itself, which it does only where it can prove the call
// will not run; otherwise it returns false and the call's own outcome
// settles the future.
//
// Where the call is, and what cancel() does (drain_mutex_ and
// dispatch_mutex_ held, so no answer is half taken):
//   1. in the pool's queue: claimed, so no dispatch sends it; true.
//   2. in a worker's `assigned` but not a byte of it (nor its descriptors)
//      in the ring: taken out of `assigned`; the worker never learns of it;
//      true.
//   3. in the ring at assigned[i], i >= 1, behind a call the worker has not
//      finished answering: appended to the worker's CancelList and, if the
//      check below proves the worker will see the entry, settled; true.
//   4. the worker's front call (which it runs, or may be beginning now),
//      with cancel_running (the default): unless its answer has begun to
//      arrive, it is settled with TaskCancelled and the worker is stopped
//      as for a deadline (deadlines.cpp): killed with its process group,
//      the calls behind it requeued, never run twice; true.
//   5. anything else (the front call without cancel_running or whose
//      answer is arriving; a dead, condemned or stopping worker; a full
//      CancelList): false, and nothing is appended, so the call runs and
//      its result arrives.
//
// A call behind answers the worker has written but the host has not read
// yet (its thread busy elsewhere) may be running already: case 3's check
// then fails. cancel() reads those answers (drain_locked, which takes
// dispatch_mutex_ itself, so that lock is let go meanwhile) and looks
// again: the call is now the front one, case 4. Were it to fail that way
// every time (a worker answering as fast as the host reads), it gives up
// after kDrainRounds and says false (case 5). Without the reading, a
// running call's cancel() said false whenever the host was slow to read
// the answer before it, and the call ran to its end.
//
// Case 3, the proof. The worker (worker_loop.cpp) stores `started` =
// answered + i + 1 (release) when it begins assigned[i], then reads the
// CancelList (acquire on count) and skips the call if its id is there.
// Before that, it has published the end of assigned[i-1]'s answer, and
// ByteRing::publish stores the ring's head, then runs a seq_cst fence (Y).
// The host:
//   pre-check (below); ids[n % kCancelSlots].store(id, relaxed);
//   count.store(n + 1, release); fence(seq_cst) (X); then reads `started`
//   and the response ring's head, and requires either
//     (a) started <= answered + i - 1: assigned[i-1] is not begun, or
//     (b) started <= answered + i and nothing unread in the response ring:
//         with the drain lock held every answer written so far has been
//         taken, and assigned[i-1] is still in `assigned`, so the end of its
//         answer is not written.
// Either way the host did not see a store the worker makes before Y, so Y
// does not precede X in the single total order of seq_cst fences: X
// precedes Y, and the worker's read of count after Y sees this entry
// ([atomics.fences]). It will skip the call; its Skipped answer later finds
// the state claimed and is absorbed (response_reader.cpp accepts Skipped
// for a withdrawn call). The same condition is checked before the append,
// so that a call the host cannot promise is never put on the list.
//
// If the condition fails after the append, the worker raced it: it may or
// may not see the entry, and the host cannot know before the answer comes.
// cancel() returns false and hands the call's place in `assigned` to a
// WithdrawalProbe: whatever the worker answers settles the probe, which
// passes a value or an error on to the caller's state, and for a Skipped
// answer (the call never ran) queues the call again under a new task id
// (the old one stays in the worker's list). Either way the future ends
// with the call's real outcome.
//
// shutdown(cancel_futures) applies cases 1 to 3 to every call the pool
// holds (cancel_unstarted_locked), never case 4: running calls finish.
//
// The worker reads only the last kCancelSlots entries, so an entry must not
// be pushed out while its call is unanswered: the host appends only when
// every withdrawn call still in `assigned` was appended within the last
// kCancelSlots entries (PoolPlace::cancel_entry), else it is case 4.
// A replacement worker gets a fresh segment, so no stale entry reaches it.
#include <procpool/loop/pool_core.hpp>

#include <algorithm>
#include <cstring>

#include <procpool/common/errors.hpp>

namespace procpool::detail {

std::atomic<void (*)(int)> withdrawal_race_for_tests{nullptr};

// Stands in for a call whose withdrawal raced the worker (case 3 above,
// lost): it takes the worker's answer and passes it on.
class WithdrawalProbe final : public SharedState<void> {
 public:
  explicit WithdrawalProbe(std::shared_ptr<StateBase> call) noexcept : call_(std::move(call)) {}
  // The value goes straight into the caller's state: nobody else settles it
  // while the probe holds its place (cancel() sees it withdrawn).
  void load_value(InputArchive& in, const AnswerSource& from) override { call_->load_value(in, from); }
  bool void_value() const noexcept override { return call_->void_value(); }

  // Runs once the probe is settled, on the settling thread, no lock held.
  void pass_on(const std::weak_ptr<PoolCore>& pool) {
    if (!passes_on_) return;  // it was not needed, or is a steal's placeholder
    if (cancelled()) {
      // Skipped: it never ran. The call goes back to the queue.
      auto core = pool.lock();
      if (!resend_error_ && core) return core->resend_skipped(std::move(call_), std::move(record_));
      call_->settle_error(resend_error_ ? resend_error_
                                        : std::make_exception_ptr(PoolShutdown("the pool stopped first")));
      if (core) core->count_outcome(*call_);
      return;
    }
    if (!call_->try_claim()) return;
    if (failed()) call_->set_error(error());
    call_->publish();
  }

  TaskRecord record_;                // what resend_skipped needs: a copy of the frame and descriptors
  std::exception_ptr resend_error_;  // the copy could not be made
  // Set (both locks held) when it takes the place of a call whose
  // withdrawal raced the worker; read by pass_on after the answer was
  // taken under the dispatch lock, or after the probe was published there.
  bool passes_on_ = false;

 private:
  std::shared_ptr<StateBase> call_;
};

bool PoolCore::cancel_call(StateBase& state, bool may_stop) {
  if (in_another_process()) return false;  // the call is the parent's to cancel
  constexpr int kDrainRounds = 3;
  // Calls that a stopped worker's replacement could not take, and answers
  // read on the way: published on every way out, once the locks are
  // released (declared before them).
  Published out;
  struct PublishOnExit {
    PoolCore& core;
    Published& out;
    ~PublishOnExit() { core.publish(out); }
  } publish_on_exit{*this, out};
  {
    std::unique_lock drain(drain_mutex_, std::defer_lock);
    std::unique_lock dispatch(dispatch_mutex_, std::defer_lock);
    std::lock(drain, dispatch);
    for (int round = 0;; ++round) {
      bool behind_unread = false;
      if (withdraw_locked(state, may_stop, "the call was cancelled before it started", out, &behind_unread)) break;
      if (!behind_unread || round == kDrainRounds || stopping_) return false;
      dispatch.unlock();
      drain_locked(out);  // the answers written before it: it may be the front call now
      dispatch.lock();
    }
  }
  count_outcome(state);
  state.publish();
  return true;
}

void PoolCore::cancel_unstarted_locked(Published& out) {
  // shutdown(cancel_futures): cases 1 to 3 for every call held, never 4 (a
  // running call finishes). Copied first: a withdrawal changes `assigned`.
  std::vector<std::shared_ptr<StateBase>> held;
  for (auto& t : pending_) held.push_back(t.state);
  for (auto& slot : slots_)
    for (auto& t : slot->assigned) held.push_back(t.state);
  for (auto& state : held)
    if (!state->claimed() &&
        withdraw_locked(*state, /*may_stop=*/false,
                        "the call was cancelled by shutdown(cancel_futures) before it started", out))
      out.push_back(std::move(state));
}

bool PoolCore::withdraw_locked(StateBase& state, bool may_stop, const char* why, Published& out, bool* behind_unread) {
  StateBase::PoolPlace& place = state.place;
  if (place.task_id == 0 || place.withdrawn) return false;
  if (place.slot < 0) {
    // Case 1: claimed before the lock goes, so that no dispatch sends it
    // meanwhile (dispatch drops claimed calls).
    if (!state.try_claim()) return false;
    state.set_error(std::make_exception_ptr(TaskCancelled(why)));
    return true;
  }
  WorkerSlot& slot = *slots_[static_cast<size_t>(place.slot)];
  auto at = std::find_if(slot.assigned.begin(), slot.assigned.end(),
                         [&](const TaskRecord& t) { return t.id == place.task_id; });
  if (at == slot.assigned.end() || !slot.usable()) return false;
  size_t i = static_cast<size_t>(at - slot.assigned.begin());
  bool unsent = i > slot.sent || (i == slot.sent && slot.sent_bytes == 0 && !slot.handles_sent);
  if (unsent) {
    // Case 2.
    if (!state.try_claim()) return false;
    slot.assigned.erase(at);
    slot.count_calls();
    ++slot.calls_left;  // never reached the worker (max_tasks_per_child)
    place.slot = -1;
    state.set_error(std::make_exception_ptr(TaskCancelled(why)));
    return true;
  }
  if (i == 0) return may_stop && place.cancel_running && stop_running_call_locked(slot, state, out);  // case 4, or 5
  return withdraw_from_ring_locked(slot, i, why, behind_unread);                                      // case 3, or 5
}

bool PoolCore::stop_running_call_locked(WorkerSlot& slot, StateBase& state, Published& out) {
  auto error = std::make_exception_ptr(TaskCancelled(
      std::string("the call of '") + function_name(slot.assigned.front().function_id) +
      "' was cancelled while worker " + std::to_string(slot.pid) + " ran it; the worker was stopped and replaced"));
  // False when its answer has begun to arrive: it ended; its answer settles it.
  if (!request_stop_locked(slot)) return false;
  bool claimed = state.try_claim();  // in `assigned`, so unsettled: only cancel() claims such a call
  if (claimed) state.set_error(std::move(error));
  stop_running_locked(slot, out);  // requested: the worker is to go either way
  return claimed;
}

bool PoolCore::worker_will_see_withdrawal_locked(WorkerSlot& slot, size_t i) {
  uint64_t started = slot.segment->control().started.load(std::memory_order_acquire);
  if (started + 1 <= slot.answered + i) return true;  // (a)
  if (started > slot.answered + i) return false;
  try {
    return slot.responses.readable() == 0;  // (b)
  } catch (const RingCorrupt&) {
    return false;  // a forged head: the drain condemns the worker
  }
}

PoolCore::Withdrawal PoolCore::append_withdrawal_locked(WorkerSlot& slot, size_t i, bool* behind_unread,
                                                        std::shared_ptr<WithdrawalProbe>* unused_probe) {
  if (i == 0) return Withdrawal::refused;
  if (!worker_will_see_withdrawal_locked(slot, i)) {
    // The worker is past the call before it; what it wrote is unread.
    if (behind_unread) *behind_unread = true;
    return Withdrawal::refused;
  }
  CancelList& list = slot.segment->header().cancelled;
  uint32_t n = list.count.load(std::memory_order_relaxed);
  for (const TaskRecord& t : slot.assigned)
    if (t.state->place.withdrawn && n - t.state->place.cancel_entry >= kCancelSlots) return Withdrawal::refused;
  TaskRecord& task = slot.assigned[i];
  StateBase& state = *task.state;
  // Made, and its callback registered, before the append: once the entry
  // is out, the outcome must be handled whatever happens, so nothing after
  // it may fail. The callback does nothing unless the probe is put to use.
  auto probe = std::make_shared<WithdrawalProbe>(task.state);
  probe->on_ready_anywhere([probe = probe.get(), pool = weak_from_this()] { probe->pass_on(pool); });
  auto race = withdrawal_race_for_tests.load(std::memory_order_relaxed);
  if (race) race(0);
  list.ids[n % kCancelSlots].store(task.id, std::memory_order_relaxed);
  list.count.store(n + 1, std::memory_order_release);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (race) race(1);
  state.place.withdrawn = true;
  state.place.cancel_entry = n;
  if (worker_will_see_withdrawal_locked(slot, i)) {
    if (unused_probe) *unused_probe = std::move(probe);  // a stolen call's placeholder (take_back_locked)
    return Withdrawal::proven;
  }
  // Lost the race: the probe takes the call's place and its answer.
  probe->place = state.place;
  probe->record_.id = task.id;
  probe->record_.function_id = task.function_id;
  probe->record_.timeout_ms = task.timeout_ms;  // sent again, it keeps its deadline
  try {
    probe->record_.frame.append(task.frame.data(), task.frame.size());
    if (task.handles) probe->record_.handles = std::make_unique<HandleList>(*task.handles);
  } catch (...) {
    probe->resend_error_ = std::current_exception();  // a Skipped answer then fails the call with it
  }
  probe->passes_on_ = true;
  task.state = std::move(probe);
  return Withdrawal::raced;
}

bool PoolCore::withdraw_from_ring_locked(WorkerSlot& slot, size_t i, const char* why, bool* behind_unread) {
  if (append_withdrawal_locked(slot, i, behind_unread) != Withdrawal::proven) return false;
  StateBase& state = *slot.assigned[i].state;
  bool claimed = state.try_claim();  // in `assigned`, so unsettled: only cancel() claims such a call
  if (claimed) state.set_error(std::make_exception_ptr(TaskCancelled(why)));
  return claimed;  // (left in `assigned`, claimed, for the worker's Skipped answer)
}

bool PoolCore::take_back_locked(WorkerSlot& slot, size_t i, std::vector<TaskRecord>& moved) {
  if (moved.size() == moved.capacity()) return false;  // no room it may take without allocating
  std::shared_ptr<WithdrawalProbe> placeholder;
  if (append_withdrawal_locked(slot, i, nullptr, &placeholder) != Withdrawal::proven) return false;
  // The worker will skip it: the call leaves, whole (its deadline, its
  // SharedBytes), and a placeholder takes its answer. Claimed, so that the
  // Skipped answer is absorbed and a death drops it (dispatch skips claimed
  // calls); ready, so that a shutdown waiting for the calls held does not
  // wait for it. Nobody waits on it, and its one callback does nothing
  // (passes_on_ is false): publishing it under the locks is a store.
  TaskRecord& left = slot.assigned[i];
  placeholder->place = left.state->place;
  (void)placeholder->try_claim();
  placeholder->publish();
  TaskRecord stand_in{left.id, left.function_id, 0, std::move(placeholder), {}, nullptr};  // no deadline
  moved.push_back(std::move(left));  // within the capacity: no allocation
  left = std::move(stand_in);
  renumber_locked(moved.back());
  return true;
}

void PoolCore::renumber_locked(TaskRecord& record) {
  // A new id: the old one stays in the skipping worker's CancelList.
  record.id = ++next_task_;
  FrameHeader header;
  std::memcpy(&header, record.frame.data(), sizeof header);
  header.task_id = record.id;
  std::memcpy(record.frame.data(), &header, sizeof header);
  record.state->place = StateBase::PoolPlace{record.id, -1, false, 0, record.state->place.cancel_running};
}

void PoolCore::resend_skipped(std::shared_ptr<StateBase> state, TaskRecord record) {
  Published out;
  {
    std::unique_lock lock(dispatch_mutex_);
    if (stopping_) {
      lock.unlock();
      state->settle_error(std::make_exception_ptr(PoolShutdown("the pool stopped before the call could run")));
      return;
    }
    record.state = std::move(state);
    renumber_locked(record);
    pending_.push_front(std::move(record));
    dispatch_locked(out);
  }
  publish(out);
}

}  // namespace procpool::detail
