// SPDX-License-Identifier: MIT
// Workers: fork, death, replacement (on the reactor thread).
#include <procpool/loop/death_watch.hpp>
#include <procpool/loop/pool_core.hpp>

#include <boost/asio/post.hpp>

#include <signal.h>

#include <procpool/common/backtrace.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/sandbox/seccomp_filter.hpp>
#include <procpool/worker/pidfd.hpp>
#include <procpool/worker/worker_process.hpp>

namespace procpool::detail {
namespace {

// A sandboxed worker killed by SIGSYS broke its sandbox: the trap's handler
// recorded which syscall, unless the task kept the handler from running.
std::exception_ptr sandbox_violation(const ControlBlock& control, const std::string& function, pid_t pid,
                                     std::string backtrace, const std::vector<std::string>& last_output) {
  uint32_t arch = control.violation_arch.load(std::memory_order_relaxed);
  int number = control.violation_syscall.load(std::memory_order_relaxed);
  std::string name = arch != 0 ? syscall_name(arch, number) : std::string();
  return std::make_exception_ptr(
      SandboxViolation(function, pid, std::move(name), number, std::move(backtrace), last_output));
}

}  // namespace

void PoolCore::watch_death(WorkerSlot& slot) {
  slot.pidfd->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                         [weak = weak_from_this(), &slot, pid = slot.pid](const boost::system::error_code& ec) {
                           auto self = weak.lock();
                           if (!ec && self) self->on_death(slot, pid);
                         });
}

void PoolCore::on_death(WorkerSlot& slot, pid_t pid) {
  Published out;
  std::vector<OutputLine> output;
  std::exception_ptr cannot_start;
  {
    std::lock_guard drain(drain_mutex_);
    // Shutdown reaps it. A process stopped for a deadline or a cancel left
    // the slot (deadlines.cpp), which may hold its replacement by now: the
    // pid tells them apart (the stopped one, unreaped, keeps its pid).
    if (stopping_ || !slot.alive || slot.pid != pid) return;
    if (!confirm_death(*slot.pidfd, [&] { watch_death(slot); })) return;  // a wake of the reactor's, not a death
    counters_.worker_deaths.fetch_add(1, std::memory_order_relaxed);
    int sig = 0, code = -1;
    // What its tasks started dies with it (bury: its group first, while
    // the unreaped worker still holds the group's id).
    bury(slot.pid, slot.pidfd->native_handle(), sig, code);
    if (sig == 0 && code == -1) sig = slot.segment->control().crash_signal.load(std::memory_order_relaxed);
    // All it wrote is in its pipes now (its group is dead too): read to the
    // end, before its last lines are put in its WorkerCrashed.
    if (slot.output) output = slot.output->finish();
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
      } else if (!(error = limit_death_error(task, slot, sig, code))) {
        std::string where = sig != 0 ? symbolize_crash(control) : std::string();
        std::vector<std::string> last = slot.output ? slot.output->last_lines() : std::vector<std::string>();
        if (sig == SIGSYS && options_.sandbox.enabled())
          error = sandbox_violation(control, function_name(task.function_id), slot.pid, where, last);
        else
          error =
              std::make_exception_ptr(WorkerCrashed(function_name(task.function_id), slot.pid, sig, code, where, last));
      }
      // A call that killed its worker, as opposed to a worker that broke the
      // protocol: the crash-loop breaker counts it. (A worker the host stops
      // for a deadline or a cancel leaves its slot first: no death of its
      // comes here.)
      if (crash_loop_on_ && !broke_protocol) note_killing_call_locked(task.function_id);
      if (error && task.state->try_claim()) {
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
    slot.front_deadline = std::chrono::steady_clock::time_point::max();
    if (started == slot.answered && code == kExitServedItsCalls)
      retired_served_.fetch_add(1, std::memory_order_relaxed);
    if (started == slot.answered && code == kExitOverMemory) retired_memory_.fetch_add(1, std::memory_order_relaxed);
    cannot_start =
        count_start_locked(control, slot.pid, slot.forked_at, slot.ready, slot.start_timed_out, served, sig, code);
  }
  // What it printed first, then the crashed call fails, not after the
  // replacement's fork.
  deliver_output(output);
  publish(out);
  out.clear();
  {
    std::scoped_lock lock(drain_mutex_, dispatch_mutex_);
    slot.pidfd.reset();  // after the publish: unmapping is not free
    slot.segment.reset();
    slot.output.reset();
    slot.handle_socket.reset();  // descriptors still in it are the dead worker's
    if (stopping_) return;
    // While a shutdown (wait true or false) lets the last calls finish, a
    // worker is replaced only if calls are left for it.
    bool needed = accepting_ || !pending_.empty();
    if (!needed) return;
    // Broken: no slot forks again, every pending call fails now, and
    // submit() fails every later one (all slots retired). A worker still
    // alive finishes the calls it holds.
    if (cannot_start) break_pool_locked(cannot_start, out);
    if (!slot.retired) {
      respawn_locked(slot, out);
    } else if (std::none_of(slots_.begin(), slots_.end(), [](auto& s) { return s->alive; })) {
      fail_all_pending(start_error_, out);  // the calls a dying worker gave back
    }
  }
  publish(out);
}

bool PoolCore::watchdog_needed_locked() const {
  return std::any_of(
             slots_.begin(), slots_.end(),
             [](auto& s) { return s->alive && (!s->ready || s->calls_held.load(std::memory_order_seq_cst) > 0); }) ||
         std::any_of(spares_.begin(), spares_.end(), [](auto& s) { return !s.ready; });
}

void PoolCore::arm_watchdog_locked() {
  if (watchdog_armed_ || stopping_) return;
  start_timer(watchdog_timer_, kWatchdogInterval, &PoolCore::on_watchdog);
  watchdog_armed_ = true;
  watchdog_due_.store(true, std::memory_order_seq_cst);
}

void PoolCore::wake_watchdog() {
  if (watchdog_due_.exchange(true, std::memory_order_seq_cst)) return;
  // Rare: only when the watchdog had stopped for want of calls to watch.
  try {
    boost::asio::post(io_, [weak = weak_from_this()] {
      auto self = weak.lock();
      if (!self) return;
      std::lock_guard drain(self->drain_mutex_);
      self->arm_watchdog_locked();
    });
  } catch (...) {
    watchdog_due_.store(false, std::memory_order_seq_cst);  // out of memory: the next dispatch tries again
  }
}

void PoolCore::on_watchdog() {
  {
    std::lock_guard drain(drain_mutex_);
    watchdog_armed_ = false;
    if (stopping_) return;
    note_starts_locked();
  }
  // Every ring, whatever the doorbells say.
  reactor_turn();
  {
    // A worker that fell idle with no answer to say so (its calls were
    // cancelled) while another holds queued calls (work stealing).
    std::lock_guard dispatch(dispatch_mutex_);
    note_idle_locked();
  }
  std::lock_guard drain(drain_mutex_);
  if (stopping_ || watchdog_armed_) return;
  if (!watchdog_needed_locked()) {
    // Cleared, then looked at once more (see watchdog_due_): a dispatcher
    // that stored calls_held before this clear is seen here; one after it
    // sees the clear and wakes the watchdog.
    watchdog_due_.store(false, std::memory_order_seq_cst);
    if (!watchdog_needed_locked()) return;
  }
  arm_watchdog_locked();
}

void PoolCore::note_starts_locked() {
  auto now = std::chrono::steady_clock::now();
  bool started = false;
  // A process that said it is ready is; one past its start-up deadline
  // is killed (on_death replaces it, on_spare_death forgets it).
  auto check = [&](WorkerSegment& segment, bool& ready, bool& timed_out, auto forked_at, auto& pidfd) {
    if (segment.control().ready.load(std::memory_order_acquire) != 0) {
      ready = started = true;
    } else if (!timed_out && now - forked_at > options_.start_timeout) {
      timed_out = true;
      send_signal(pidfd.native_handle(), SIGKILL);
    }
  };
  for (auto& slot : slots_)
    if (slot->alive && !slot->ready)
      check(*slot->segment, slot->ready, slot->start_timed_out, slot->forked_at, *slot->pidfd);
  for (auto& spare : spares_)
    if (!spare.ready) check(*spare.segment, spare.ready, spare.start_timed_out, spare.forked_at, *spare.pidfd);
  if (started) {  // a worker started: failed starts are no longer in a row
    last_start_seen_ = now;
    end_failed_row_locked();
  }
}

void PoolCore::fail_all_pending(const std::exception_ptr& error, Published& out) {
  for (auto& task : pending_)
    if (task.state->try_claim()) {
      task.state->set_error(error);
      out.push_back(task.state);
    }
  pending_.clear();
}

}  // namespace procpool::detail
