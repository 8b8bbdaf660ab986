// SPDX-License-Identifier: MIT
// Workers' processes: forking them, keeping spares, putting one in a slot.
//
// Why a thread of its own. A fork costs the host a millisecond or more on
// a virtual machine (page tables copied, then copy-on-write faults and TLB
// shootdowns), and so does the child before it is ready. Forked on the
// reactor with the pool's locks held, as the first workers are, a
// replacement stalled every submitter, poller and answer for that time.
// The forker thread forks with no lock held: the reactor goes on serving
// the other workers, and a worker is put in its slot only once it exists.
//
// Spares. A slot that loses its process (a crash, a deadline, a cancel, a
// worker retiring after max_tasks_per_child) takes a spare at once if one
// is there: a worker forked earlier, its initializer already run, idle on
// its request ring. Its replacement then costs the slot a few pointer
// moves instead of a fork. PoolOptions::spare_workers bounds them; they
// are forked from the pool's first replacement on (spares_wanted_), so a
// pool whose workers never die never has one. While workers fail to start
// (failed_starts_ > 0) no spare is forked: a failing initializer is not
// run more often than slots need workers. A spare taken is refilled
// kSpareRefillDelay later, not at once: a fork competes for the CPUs and
// the host's address space with the spare's first calls. A slot that asks
// while a spare is being forked gets that process (slots come first), so
// a refill never delays a replacement by more than the fork under way.
//
// Who asks. respawn_locked (a slot lost its process) takes a spare or sets
// the slot's needs_process, and wakes the forker either way (to fork a
// replacement or to refill the spares). A spare that dies idle, a worker
// that becomes ready after failed starts, wake it too. The forker looks
// under both mutexes at what is wanted (fork_wanted_locked), forks one
// worker unlocked, then hands it over under both mutexes (place_locked):
// to the first slot that needs a process, else to the spares, else (the
// want went away meanwhile: a shutdown, a broken pool) it kills and reaps
// it itself. A fork that fails is retried, backing off, and with no worker
// left the queued calls fail with its error.
//
// Lifetimes. PR_SET_PDEATHSIG ties a worker to the thread that forked it:
// the forker thread is joined only once every worker is reaped
// (stop_workers ends with stop_forker). A fork in progress when the pool
// halts finds stopping_ set and discards its worker before the join returns.
#include <procpool/loop/death_watch.hpp>
#include <procpool/loop/pool_core.hpp>

#include <boost/asio/post.hpp>

#include <signal.h>
#include <sys/eventfd.h>

#include <cstring>

#include <procpool/common/errno_text.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/common/handle_channel.hpp>
#include <procpool/worker/pidfd.hpp>
#include <procpool/worker/worker_process.hpp>

namespace procpool::detail {

ForkedWorker PoolCore::fork_worker() {
  ForkedWorker w;
  w.segment = std::make_unique<WorkerSegment>(
      options_.ring_bytes, start_method_ == StartMethod::fork ? SegmentMemory::anonymous : SegmentMemory::memfd);
  UniqueFd efd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!efd) throw Error(std::string("cannot create a worker's doorbell: eventfd: ") + detail::errno_text(errno));
  w.doorbell = std::make_unique<boost::asio::posix::stream_descriptor>(io_, efd.get());
  WorkerConfig config = worker_config_;
  config.doorbell_fd = efd.release();
  HandleSockets sockets = make_handle_sockets();
  UniqueFd worker_end(sockets.worker);
  w.handle_socket.reset(sockets.host);
  config.handle_socket = worker_end.get();
  OutputPipes pipes;
  if (options_.worker_output == WorkerOutput::capture) {
    pipes = make_output_pipes();
    config.stdout_fd = pipes.out_write.get();
    config.stderr_fd = pipes.err_write.get();
  }
  SpawnedWorker spawned = start_worker(start_method_, *w.segment, config, options_.worker_program);
  w.pid = spawned.pid;
  sweeper_.watch(w.pid);
  w.forked_at = std::chrono::steady_clock::now();
  worker_end.reset();
  pipes.out_write.reset();  // only the worker writes: its death ends the pipes
  pipes.err_write.reset();
  UniqueFd pidfd(spawned.pidfd);
  try {
    w.pidfd = std::make_unique<boost::asio::posix::stream_descriptor>(io_, pidfd.get());
    pidfd.release();
    if (options_.worker_output == WorkerOutput::capture) {
      w.output = std::make_shared<OutputCapture>(io_, pipes, w.pid, [weak = weak_from_this()](auto& lines) {
        if (auto self = weak.lock()) self->deliver_output(lines);
      });
      w.output->start();
    }
  } catch (...) {
    // Out of memory, or the reactor could not take the descriptor: the
    // worker goes, now.
    int fd = w.pidfd ? w.pidfd->native_handle() : pidfd.get();
    send_signal(fd, SIGKILL);
    int sig = 0, code = 0;
    bury(w.pid, fd, sig, code);
    throw;
  }
  return w;
}

void PoolCore::install_locked(WorkerSlot& slot, ForkedWorker w) {
  slot.segment = std::move(w.segment);
  slot.requests = slot.segment->request_ring();
  slot.responses = slot.segment->response_ring();
  slot.doorbell = std::move(w.doorbell);  // the previous process's, if any, closes
  ++slot.doorbell_generation;
  slot.handle_socket = std::move(w.handle_socket);
  slot.output = std::move(w.output);
  slot.pid = w.pid;
  // A spare's death was watched with the spare: that wait is dropped (its
  // handler finds no spare of that pid), and the slot watches now.
  if (w.pidfd->native_handle() >= 0) w.pidfd->cancel();
  slot.pidfd = std::move(w.pidfd);
  slot.alive = true;
  slot.needs_process = false;
  slot.sent = slot.sent_bytes = 0;
  slot.handles_sent = false;
  slot.answered = 0;
  slot.calls_left = options_.max_tasks_per_child > 0 ? options_.max_tasks_per_child : SIZE_MAX;
  slot.forget_answer();
  slot.condemned.clear();
  slot.request_fault.clear();
  slot.front_deadline = std::chrono::steady_clock::time_point::max();
  slot.forked_at = w.forked_at;
  slot.ready = w.ready;
  slot.start_timed_out = w.start_timed_out;
  watch_death(slot);
  // The reactor waits on its doorbell from now; the worker is asked to
  // ring it only once it holds a call (expect_answers_locked).
  arm_doorbell_locked(slot);
  arm_watchdog_locked();  // its start-up deadline, if it is not ready yet
  note_idle_locked();     // calls queued on others may come to it (work stealing)
}

void PoolCore::respawn_locked(WorkerSlot& slot, Published& out) {
  if (slot.retired) return dispatch_locked(out);  // the pool is broken: no process for it
  spares_wanted_ = options_.spare_workers > 0;
  // The oldest spare first: the likeliest to be ready. One that missed its
  // start-up deadline is dying; one already dead is found so by the slot's
  // own watch, as any death.
  auto spare = std::find_if(spares_.begin(), spares_.end(), [](auto& s) { return !s.start_timed_out; });
  if (spare != spares_.end()) {
    std::list<ForkedWorker> taken;
    taken.splice(taken.end(), spares_, spare);
    install_locked(slot, std::move(taken.front()));
    counters_.respawns.fetch_add(1, std::memory_order_relaxed);
    counters_.spares_taken.fetch_add(1, std::memory_order_relaxed);
    // Its successor is forked a little later: a fork now would take a CPU
    // and the host's address space (page faults wait for the copy of its
    // page tables) from the spare's first calls.
    refill_after_ = std::chrono::steady_clock::now() + kSpareRefillDelay;
  } else {
    slot.needs_process = true;
  }
  wake_forker();  // a process for the slot, or a spare in place of the one taken
  dispatch_locked(out);
}

void PoolCore::wake_forker() {
  {
    std::lock_guard lock(forker_mutex_);
    forker_woken_ = true;
  }
  forker_cv_.notify_one();
}

void PoolCore::forker_main() {
  std::unique_lock lock(forker_mutex_);
  for (;;) {
    forker_cv_.wait(lock, [&] { return forker_stop_ || forker_woken_; });
    if (forker_stop_) return;
    forker_woken_ = false;
    lock.unlock();
    auto later = fork_wanted_workers();
    lock.lock();
    if (fork_failures_ > 0) {
      // fork fails for passing reasons (EAGAIN, ENOMEM): try again, backing
      // off, whoever asks meanwhile.
      auto delay = std::chrono::milliseconds(std::min(1000, 50 << std::min(fork_failures_, 5u)));
      forker_cv_.wait_for(lock, delay, [&] { return forker_stop_; });
      forker_woken_ = true;
    } else if (later) {
      // A spare's refill is due: unless a slot asks for a process first.
      forker_cv_.wait_until(lock, *later, [&] { return forker_stop_ || forker_woken_; });
      forker_woken_ = true;
    }
  }
}

PoolCore::ForkWanted PoolCore::fork_wanted_locked() const {
  if (stopping_) return ForkWanted::nothing;
  // While a shutdown lets the last calls finish, a slot gets a worker only
  // if calls are left for it.
  // Nor at max_failed_starts failures in a row, while the starts still
  // under way decide whether the pool is broken (count_start_locked).
  if ((accepting_ || !pending_.empty()) && failed_starts_ < max_failed_starts())
    for (auto& slot : slots_)
      if (slot->needs_process && !slot->retired) return ForkWanted::for_slot;
  bool spare =
      spares_wanted_ && accepting_ && !start_error_ && failed_starts_ == 0 && spares_.size() < options_.spare_workers;
  return spare ? ForkWanted::spare : ForkWanted::nothing;
}

std::optional<std::chrono::steady_clock::time_point> PoolCore::fork_wanted_workers() {
  for (;;) {
    {
      std::scoped_lock lock(drain_mutex_, dispatch_mutex_);
      ForkWanted wanted = fork_wanted_locked();
      if (wanted == ForkWanted::nothing) return std::nullopt;
      if (wanted == ForkWanted::spare && std::chrono::steady_clock::now() < refill_after_) return refill_after_;
    }
    ForkedWorker w;
    std::exception_ptr error;
    // Dated from before the fork, not from fork_worker's return: this
    // thread may wait for a CPU while the child already runs its
    // initializer (and fails), and that start must not pass for one begun
    // after a success the host sees meanwhile (count_start_locked). Its
    // start_timeout runs from here too.
    auto began = std::chrono::steady_clock::now();
    try {
      w = fork_worker();
      w.forked_at = began;
    } catch (...) {
      error = std::current_exception();
    }
    Published out;
    bool placed = false;
    {
      std::scoped_lock lock(drain_mutex_, dispatch_mutex_);
      if (error) {
        ++fork_failures_;
        // With no worker left, queued calls cannot wait for one: fail them
        // now (unless the pool is halting: its end fails them). Their
        // callbacks run on the reactor: no user code runs on this thread.
        if (!stopping_ && std::none_of(slots_.begin(), slots_.end(), [](auto& s) { return s->alive; }))
          fail_all_pending(error, out);
      } else {
        fork_failures_ = 0;
        placed = place_locked(w, out);
      }
    }
    publish(out);
    if (error) return std::nullopt;  // forker_main backs off
    if (!placed) discard(w);
  }
}

bool PoolCore::place_locked(ForkedWorker& w, Published& out) {
  if (stopping_) return false;
  if (accepting_ || !pending_.empty())
    for (auto& slot : slots_)
      if (slot->needs_process && !slot->retired) {
        install_locked(*slot, std::move(w));
        counters_.respawns.fetch_add(1, std::memory_order_relaxed);
        dispatch_locked(out);
        return true;
      }
  // Kept even while starts fail (no spare is forked then, but this one is
  // forked already): killed, a start that may have succeeded would go
  // unseen, and two failures around it would count as a row. on_death
  // counts a failure before it asks for the slot's replacement: the slot
  // takes this spare then.
  if (!spares_wanted_ || !accepting_ || start_error_ || spares_.size() >= options_.spare_workers) return false;
  spares_.push_back(std::move(w));
  watch_spare(spares_.back());
  arm_watchdog_locked();  // its start-up deadline
  return true;
}

void PoolCore::discard(ForkedWorker& w) noexcept {
  if (!w.pidfd || w.pidfd->native_handle() < 0) return;
  int pidfd = w.pidfd->native_handle();
  send_signal(pidfd, SIGKILL);
  int sig = 0, code = 0;
  bury(w.pid, pidfd, sig, code);
  // What it printed (its initializer may have) goes to on_output on the
  // reactor, as all output does: no user code runs on this thread, so the
  // pool is never destroyed on it. Dropped if the reactor has stopped.
  if (w.output) {
    auto lines = std::make_shared<std::vector<OutputLine>>(w.output->finish());
    if (!lines->empty()) try {
        boost::asio::post(io_, [weak = weak_from_this(), lines] {
          if (auto self = weak.lock()) self->deliver_output(*lines);
        });
      } catch (...) {
      }
  }
  w = ForkedWorker();
}

void PoolCore::watch_spare(ForkedWorker& w) {
  w.pidfd->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                      [weak = weak_from_this(), pid = w.pid](const boost::system::error_code& ec) {
                        auto self = weak.lock();
                        if (!ec && self) self->on_spare_death(pid);
                      });
}

void PoolCore::on_spare_death(pid_t pid) {
  std::list<ForkedWorker> dead;
  std::vector<OutputLine> lines;
  Published out;
  {
    std::scoped_lock lock(drain_mutex_, dispatch_mutex_);
    if (stopping_) return;  // shutdown reaps it
    auto it = std::find_if(spares_.begin(), spares_.end(), [&](auto& s) { return s.pid == pid; });
    if (it == spares_.end()) return;                                    // taken by a slot, which watches it now
    if (!confirm_death(*it->pidfd, [&] { watch_spare(*it); })) return;  // a wake of the reactor's, not a death
    dead.splice(dead.end(), spares_, it);
    ForkedWorker& w = dead.front();
    counters_.worker_deaths.fetch_add(1, std::memory_order_relaxed);
    int sig = 0, code = -1;
    bury(w.pid, w.pidfd->native_handle(), sig, code);
    ControlBlock& control = w.segment->control();
    if (sig == 0 && code == -1) sig = control.crash_signal.load(std::memory_order_relaxed);
    if (w.output) lines = w.output->finish();
    // Killed while it waited for work (from outside, or by the watchdog
    // for its start-up deadline), or its initializer failed: counted as
    // any worker that died before it served.
    if (auto broken = count_start_locked(control, w.pid, w.forked_at, w.ready, w.start_timed_out, false, sig, code))
      break_pool_locked(broken, out);
    else wake_forker();  // another spare, unless starts are failing now
  }
  deliver_output(lines);
  publish(out);
  // `dead` is unmapped here, with no lock held.
}

void PoolCore::break_pool_locked(const std::exception_ptr& error, Published& out) {
  start_error_ = error;
  for (auto& s : slots_) {
    s->retired = true;
    s->needs_process = false;
  }
  fail_all_pending(error, out);
}

void PoolCore::bury(pid_t pid, int pidfd, int& signal, int& exit_code) noexcept {
  kill_process_group(pid);
  sweeper_.forget(pid);
  reap(pidfd, signal, exit_code);
}

void PoolCore::stop_forker() {
  {
    std::lock_guard lock(forker_mutex_);
    forker_stop_ = true;
  }
  forker_cv_.notify_one();
  if (forker_.joinable() && forker_.get_id() != std::this_thread::get_id()) forker_.join();
}

}  // namespace procpool::detail
