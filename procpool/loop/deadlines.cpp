// SPDX-License-Identifier: MIT
// Deadlines, and stopping a worker whose call must end now (its deadline
// passed, or it was cancelled while it ran).
//
// When the clock starts. A call's deadline counts from when its worker
// began it, but the worker's word for that (ControlBlock::started) is not
// to be trusted: a task can stop its worker, close its descriptors, or
// scribble over its segment. The host instead uses what it saw itself: a
// worker runs its calls in ring order, so it cannot have begun the front
// call (assigned[0]) before both
//   - the call's header was published in its request ring (pump_locked,
//     after ByteRing::publish), and
//   - the host took the answer to the call ahead of it (take_front_locked),
//     or forked the worker (then nothing was ahead of it).
// The clock starts at the later of the two moments, as the host saw them
// (start_front_clock_locked). Each is at or after the event itself, and the
// worker cannot begin before the events, so a deadline counts from no
// earlier than the worker could have begun: it is never early by more than
// the worker's own delay between publishing an answer and reading the next
// header (microseconds; the worker's code, not the task's). Only the front
// call can run, so one deadline per worker is tracked (front_deadline).
//
// The timer. One steady_timer on the reactor fires at the earliest
// deadline of all workers (deadline_timer_at_). Most deadlines come later
// than the one the timer is armed for (calls of one timeout, answered in
// turn): they cost nothing but a clock read at the front's start; the timer
// finds them when it fires and re-arms. An earlier one (the first timed
// call, or a shorter timeout) posts a re-arm to the reactor: dispatchers
// hold only dispatch_mutex_, and timers are touched under both. Calls
// without a timeout never read the clock or touch the timer.
//
// At the deadline (on_deadline, the reactor): answers already in the rings
// are taken first, so a call that ended before its deadline succeeds; a
// front call still past its deadline then has its worker stopped
// (stop_running_locked): SIGKILL of the worker through its pidfd and of its
// process group (the unreaped worker still holds the group's id), or
// SIGTERM to both and SIGKILL after stop_grace. A SIGSTOPped worker, one
// blocked in a system call, one that ignores SIGTERM or closed every
// descriptor, and what it forked (in its group), all die by SIGKILL.
// The call is failed with TaskTimeout there and then (an answer that comes
// during the grace finds it settled and is dropped). The process then
// leaves its slot at once (a StoppingWorker, reaped with its process group
// when its pidfd reports its death): the calls behind it, which it never
// began, go back to the head of the queue for the other workers, and the
// slot is given a replacement straight away rather than after the death, so
// a pool is never a worker short for the time a dying process takes. With
// a grace, the task may poll the StopRequest meanwhile. A spare worker
// takes the slot at once if the pool keeps one (PoolOptions::spare_workers).
//
// Before any signal the host sets the segment's StopRequest and proves the
// worker will begin no other call (request_stop_locked, below): a call that
// ends between the decision and the SIGKILL does not let the worker begin
// the next one, which would then die with it.
#include <procpool/loop/death_watch.hpp>
#include <procpool/loop/pool_core.hpp>

#include <boost/asio/post.hpp>

#include <signal.h>

#include <procpool/common/errors.hpp>
#include <procpool/worker/pidfd.hpp>

namespace procpool::detail {

namespace {
using Clock = std::chrono::steady_clock;
constexpr Clock::time_point kNever = Clock::time_point::max();
constexpr auto kRecheck = std::chrono::milliseconds(10);
}  // namespace

void PoolCore::start_front_clock_slow(WorkerSlot& slot) {
  // Its header must be published; pump_locked calls this again once it is.
  if (slot.sent == 0 && slot.sent_bytes < sizeof(FrameHeader)) return;
  slot.front_deadline = Clock::now() + std::chrono::milliseconds(slot.assigned.front().timeout_ms);
  if (slot.front_deadline >= deadline_timer_at_) return;  // the timer fires first and re-arms
  deadline_timer_at_ = slot.front_deadline;
  // Rare (an earlier deadline than any so far): the reactor arms the timer.
  try {
    boost::asio::post(io_, [weak = weak_from_this()] {
      auto self = weak.lock();
      if (!self) return;
      std::scoped_lock lock(self->drain_mutex_, self->dispatch_mutex_);
      if (!self->stopping_) self->arm_deadline_timer_locked();
    });
  } catch (...) {
    // Out of memory: the next front call with a deadline tries again.
    deadline_timer_at_ = kNever;
  }
}

void PoolCore::arm_deadline_timer_locked() {
  Clock::time_point earliest = kNever;
  for (auto& slot : slots_)
    if (slot->alive) earliest = std::min(earliest, slot->front_deadline);
  deadline_timer_at_ = earliest;
  if (earliest == kNever) return;
  if (!deadline_timer_) deadline_timer_ = std::make_unique<boost::asio::steady_timer>(io_);
  deadline_timer_->expires_at(earliest);  // cancels a wait for another time
  deadline_timer_->async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (!ec && self) self->on_deadline();
  });
}

void PoolCore::on_deadline() {
  Published out;
  bool answered_meanwhile = false;
  {
    std::lock_guard drain(drain_mutex_);
    if (stopping_) return;
    // Answers already written count: a call that ended in time succeeds.
    drain_locked(out);
    std::lock_guard dispatch(dispatch_mutex_);
    auto now = Clock::now();  // after the timer fired: never before a deadline it was armed for
    for (auto& slot : slots_) {
      if (!slot->usable() || slot->front_deadline > now || slot->assigned.empty()) continue;
      // The call fails now, at its deadline, not when its worker is gone
      // (after stop_grace): an answer that comes meanwhile finds it settled.
      const TaskRecord& front = slot->assigned.front();
      auto error = std::make_exception_ptr(
          TaskTimeout(function_name(front.function_id), std::chrono::milliseconds(front.timeout_ms), slot->pid));
      if (!request_stop_locked(*slot)) {
        // It ended after all: its answer settles it. Looked at again a little
        // later, should that answer never be whole (then the drain condemns it).
        answered_meanwhile = true;
        slot->front_deadline = now + kRecheck;
        continue;
      }
      if (front.state->try_claim()) {
        front.state->set_error(std::move(error));
        out.push_back(front.state);
      }
      stop_running_locked(*slot, out);
    }
    try {
      arm_deadline_timer_locked();
    } catch (...) {
      deadline_timer_at_ = kNever;  // out of memory: the next call with a deadline tries again
    }
  }
  if (answered_meanwhile) {
    std::lock_guard drain(drain_mutex_);
    if (!stopping_) drain_locked(out);  // the answers that spared their workers
  }
  publish(out);
}

// The stop request's proof, as cancel.cpp's case 3 (b): the host stores the
// request, runs a seq_cst fence (X), and finds no byte of the front call's
// answer in the ring (every earlier answer is taken: both locks are held).
// The worker publishes that answer (ByteRing::publish: the head, then a
// seq_cst fence Y) before it looks at the request (acquire) on its way to
// begin the next call. The host did not see the head stored before Y, so X
// precedes Y and the worker's look sees the request: it exits instead of
// beginning another call, and the calls behind the stopped one never ran,
// though SIGKILL may land after the front call has ended. If a byte of the
// answer is there, the call has ended: nothing is stopped, and the request
// is withdrawn (a worker that saw it meanwhile exits, and its death
// requeues the calls behind it, which it did not begin).
bool PoolCore::request_stop_locked(WorkerSlot& slot) {
  auto answer_arriving = [&] {
    try {
      return slot.reading_answer() || slot.responses.readable() > 0;
    } catch (const RingCorrupt&) {
      return false;  // a forged head: stop it all the same (the drain condemns it too)
    }
  };
  if (answer_arriving()) return false;
  std::atomic<uint32_t>& requested = slot.segment->header().stop.requested;
  requested.store(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!answer_arriving()) return true;
  requested.store(0, std::memory_order_relaxed);
  return false;
}

void PoolCore::stop_running_locked(WorkerSlot& slot, Published& out) {
  int pidfd = slot.pidfd->native_handle();
  // The process leaves the slot now, not at its death: the call it ran is
  // settled, and the StopRequest proved it begins no other, so the calls
  // behind it can go to other workers and the slot can take a new process
  // at once. Made first: if that fails (out of memory), the worker is
  // still killed, and its death is handled as any other.
  std::list<StoppingWorker> leaving;
  try {
    leaving.emplace_back();
  } catch (...) {
    send_signal(pidfd, SIGKILL);
    kill_process_group(slot.pid);
    return;
  }
  StoppingWorker& gone = leaving.back();
  gone.pid = slot.pid;
  if (options_.stop_grace.count() > 0) {
    try {
      gone.grace = std::make_unique<boost::asio::steady_timer>(io_, options_.stop_grace);
    } catch (...) {
      // Out of memory for the timer: no grace.
    }
  }
  if (gone.grace) {
    send_signal(pidfd, SIGTERM);  // the StopRequest is set: a task that survives it may poll it
    ::kill(-slot.pid, SIGTERM);   // what its tasks started, in its process group
  } else {
    send_signal(pidfd, SIGKILL);
    kill_process_group(slot.pid);  // the worker is unreaped: the group's id is still its own
  }
  // Its death is watched from the StoppingWorker now: on_death's wait is
  // cancelled (its handler sees operation_aborted and touches nothing).
  slot.pidfd->cancel();
  gone.pidfd = std::move(slot.pidfd);
  gone.segment = std::move(slot.segment);
  gone.output = std::move(slot.output);
  stopping_workers_.splice(stopping_workers_.end(), leaving);
  auto it = std::prev(stopping_workers_.end());
  watch_stopping(it);

  slot.assigned.pop_front();  // settled by the caller
  while (!slot.assigned.empty()) {
    slot.assigned.back().state->place.slot = -1;
    pending_.push_front(std::move(slot.assigned.back()));
    slot.assigned.pop_back();
  }
  slot.count_calls();
  slot.alive = false;
  slot.front_deadline = kNever;
  slot.handle_socket.reset();
  if (stopping_ || (!accepting_ && pending_.empty())) return;
  // A spare takes the slot now, or the forker thread forks a process for
  // it while the others take the calls (worker_forker.cpp): either way the
  // stopped call's future is published without waiting for a fork.
  respawn_locked(slot, out);
}

void PoolCore::watch_stopping(std::list<StoppingWorker>::iterator it) {
  if (it->grace)
    it->grace->async_wait([weak = weak_from_this(), it](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self) return;  // reaped (the timer went with it) or the pool is gone
      std::lock_guard drain(self->drain_mutex_);
      if (self->stopping_) return;  // shutdown kills and reaps it
      send_signal(it->pidfd->native_handle(), SIGKILL);
      kill_process_group(it->pid);
    });
  watch_stopping_death(it);
}

void PoolCore::watch_stopping_death(std::list<StoppingWorker>::iterator it) {
  it->pidfd->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                        [weak = weak_from_this(), it](const boost::system::error_code& ec) {
                          auto self = weak.lock();
                          if (ec || !self) return;
                          std::list<StoppingWorker> reaped;
                          std::vector<OutputLine> lines;
                          {
                            std::lock_guard drain(self->drain_mutex_);
                            if (self->stopping_) return;
                            // Alive: a wake of the reactor's, not its death.
                            if (!confirm_death(*it->pidfd, [&] { self->watch_stopping_death(it); })) return;
                            self->reap_stopping_locked(it, lines);
                            reaped.splice(reaped.end(), self->stopping_workers_, it);
                          }
                          // Its segment is unmapped here, with no lock held.
                          self->deliver_output(lines);
                        });
}

void PoolCore::reap_stopping_locked(std::list<StoppingWorker>::iterator it, std::vector<OutputLine>& lines) {
  int sig = 0, code = 0;
  bury(it->pid, it->pidfd->native_handle(), sig, code);
  counters_.worker_deaths.fetch_add(1, std::memory_order_relaxed);
  if (it->output) {
    auto rest = it->output->finish();
    lines.insert(lines.end(), std::make_move_iterator(rest.begin()), std::make_move_iterator(rest.end()));
  }
}

}  // namespace procpool::detail
