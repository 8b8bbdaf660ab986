// SPDX-License-Identifier: MIT
#pragma once
// The host side of a pool: dispatches calls into workers' request rings
// (dispatch.cpp), drains their response rings into futures
// (response_reader.cpp), watches each worker's pidfd and replaces a worker
// that dies (worker_supervision.cpp), withdraws cancelled calls
// (cancel.cpp), stops a worker whose call ran past its deadline or was
// cancelled while it ran (deadlines.cpp), bounds the calls it holds
// (max_pending, backpressure.cpp), forks replacements and keeps spares
// (worker_forker.cpp), and stops them all in every form of shutdown
// (pool_shutdown.cpp);
// pool_core.cpp holds the start, the reactor's doorbells and the polling by
// waiting threads. ProcessPool is its public face.
//
// Threads and locks:
//   - reactor thread: an Asio io_context the pool owns. It forks the first
//     workers and waits on the workers' doorbell eventfds and pidfds.
//   - forker thread: forks every later worker (replacements and spares),
//     holding no lock while it forks (worker_forker.cpp). A worker dies
//     with the thread that forked it (PR_SET_PDEATHSIG): both threads
//     outlive every worker.
//   - dispatch_mutex_: pending_ and each slot's assigned/sent state, and
//     writing into request rings; also the kept frame of a large call
//     (spare_frame_), which a submitting thread takes while it encodes.
//     Taken by submitting threads and the reactor.
//   - drain_mutex_: reading response rings. Taken by the reactor, by a
//     thread polling from Future::wait, or by a submitting thread that found
//     every worker full (both with try_lock: one drainer at a time).
//   Both are SpinThenBlockMutex: each is held for well under a microsecond.
//   Order: drain_mutex_ before dispatch_mutex_. States are published (and
//   callbacks run) with neither held.
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <poll.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <unordered_map>
#include <vector>

#include <procpool/common/this_process.hpp>
#include <procpool/loop/backpressure.hpp>
#include <procpool/loop/call_options.hpp>
#include <procpool/loop/outcome_counters.hpp>
#include <procpool/loop/pool_options.hpp>
#include <procpool/loop/pool_stats.hpp>
#include <procpool/loop/shutdown_options.hpp>
#include <procpool/loop/spin_then_block_mutex.hpp>
#include <procpool/loop/worker_slot.hpp>
#include <procpool/worker/group_sweeper.hpp>
#include <procpool/worker/worker_config.hpp>

namespace procpool::detail {

// Tests only: called with both locks held, by cancel() or a steal on the
// reactor thread, before a withdrawal is appended to a worker's CancelList
// (step 0) and after (step 1), so that a test can let the worker race it.
extern std::atomic<void (*)(int step)> withdrawal_race_for_tests;

class WithdrawalProbe;  // cancel.cpp

class PoolCore final : public Poller, public std::enable_shared_from_this<PoolCore> {
 public:
  explicit PoolCore(PoolOptions options);
  ~PoolCore() override;
  // A pool whose last reference is dropped in a process fork() copied it
  // into is kept there, never destroyed: its destruction would join threads
  // that are not there, take locks a thread of the parent may have held,
  // signal the parent's workers, and remove the parent's descriptors from
  // the epoll instance the two processes share.
  static std::shared_ptr<PoolCore> make(PoolOptions options);
  // The largest PoolOptions::ring_bytes.
  static constexpr size_t kMaxRingBytes = size_t{1} << 30;
  // Starts the reactor and the workers; throws if no worker can start.
  void start();
  // Queues an encoded call (frame holds header room + payload). Settles the
  // state with PoolShutdown if the pool no longer accepts work.
  // `handles`: the descriptors of the SharedBytes the call holds; `call`:
  // its options (those unset take the pool's); `admission`: how it takes a
  // place under max_pending (backpressure.hpp).
  void submit(ByteBuffer frame, HandleList handles, FrameKind kind, uint32_t function_id,
              std::shared_ptr<StateBase> state, const CallOptions& call = {}, Admission admission = Admission::Wait);

  // ---- every shutdown (pool_shutdown.cpp, which has the phases) ----
  // Stops accepting; cancel_futures withdraws the calls not begun; wait:
  // lets the others finish (until `deadline` at most), then halts; !wait:
  // returns, and the reactor halts once they have finished.
  void shutdown(ShutdownOptions how,
                std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max());
  // terminate(): Stop frames to idle workers, SIGTERM to busy ones, SIGKILL
  // after shutdown_grace; kill(): SIGKILL at once. Either way every call
  // not yet settled fails with PoolShutdown.
  enum class StopMode : uint8_t { Terminate, Kill };
  void halt(StopMode mode);
  // The destructor's shutdown (PoolOptions::destructor_wait).
  void shutdown_on_destroy();
  // Null without max_pending.
  const std::shared_ptr<Backpressure>& backpressure() const noexcept { return backpressure_; }

  bool poll_responses() override;
  void begin_polling() noexcept override { pollers_.fetch_add(1, std::memory_order_acq_rel); }
  void end_polling() override;
  bool on_own_thread() const noexcept override;
  bool in_another_process() const noexcept override { return this_process() != owner_; }
  pid_t owner_process() const noexcept override { return owner_; }
  // Throws procpool::Error naming `what` in a process the pool was forked
  // into (in_another_process): nothing there may touch the parent's
  // workers, rings, threads or locks.
  void refuse_in_another_process(const char* what) const;
  void run_callbacks(Callbacks callbacks) override;
  bool cancel(StateBase& state) override { return cancel_call(state, true); }
  bool withdraw(StateBase& state) override { return cancel_call(state, false); }
  bool cancel_call(StateBase& state, bool may_stop);      // cancel.cpp
  CallStatus status_of(const StateBase& state) override;  // pool_stats.cpp
  PoolStats stats();
  // Queues again a call whose worker skipped it after a withdrawal that
  // cancel() could not promise (cancel.cpp), under a new task id.
  void resend_skipped(std::shared_ptr<StateBase> state, TaskRecord record);
  std::chrono::nanoseconds poll_budget(size_t request_bytes) const noexcept override;
  void polled(bool productive) noexcept override;
  size_t max_message_bytes() const noexcept { return options_.max_message_bytes; }
  // A call being encoded needs `need` bytes, more than its frame holds: if
  // that is past a ring's worth and the pool kept a large call's frame that
  // holds `need` and is at most four times that, the frame moves into it.
  void lend_spare_frame(ByteBuffer& frame, size_t need);
  size_t worker_count() const noexcept { return slots_.size(); }
  std::vector<pid_t> worker_pids();
  boost::asio::io_context::executor_type executor() noexcept { return io_.get_executor(); }

 private:
  using Published = std::vector<std::shared_ptr<StateBase>>;

  // ---- workers' processes (worker_forker.cpp, which has the protocol) ----
  // Forks a worker with its own segment, doorbell, SharedBytes channel and
  // output pipes. Needs no lock; throws procpool::Error (nothing is left).
  ForkedWorker fork_worker();
  // Both mutexes held: puts `worker` into `slot` (which holds no process),
  // watches its death and arms its doorbell.
  void install_locked(WorkerSlot& slot, ForkedWorker worker);
  // Both mutexes held: `slot` lost its process. Gives it a spare at once if
  // one is there, else asks the forker thread for a process; then
  // dispatches (the other workers take the calls meanwhile).
  void respawn_locked(WorkerSlot& slot, Published& out);
  void wake_forker();
  void forker_main();  // the forker thread
  // Forks what is wanted, one at a time; returns when to look again (a
  // spare's refill is held back until refill_after_), if ever.
  std::optional<std::chrono::steady_clock::time_point> fork_wanted_workers();
  enum class ForkWanted : uint8_t { nothing, for_slot, spare };
  ForkWanted fork_wanted_locked() const;
  // Both mutexes held: gives a new process to a slot that waits for one,
  // or keeps it as a spare; false when neither wants it.
  bool place_locked(ForkedWorker& worker, Published& out);
  // SIGKILL and reap a process no slot will take. No lock held.
  void discard(ForkedWorker& worker) noexcept;
  // Kills the process group of a worker that has exited or was sent
  // SIGKILL (what its tasks started), tells the sweeper to forget it, and
  // reaps the worker: in this order, so that the group's id, held by the
  // unreaped worker, names no one else's group when it is killed.
  void bury(pid_t pid, int pidfd, int& signal, int& exit_code) noexcept;
  void watch_spare(ForkedWorker& worker);
  void on_spare_death(pid_t pid);
  // Both mutexes held: the pool is broken (PoolBroken): no slot forks again
  // and every pending call fails with `error`.
  void break_pool_locked(const std::exception_ptr& error, Published& out);
  void stop_forker();  // joins the forker thread; no lock held
  void watch_death(WorkerSlot& slot);
  void on_death(WorkerSlot& slot, pid_t pid);  // `pid`: the process whose death is reported
  // drain_mutex_ held: waits for the slot's doorbell (of this generation).
  void arm_doorbell_locked(WorkerSlot& slot);
  void arm_doorbell(WorkerSlot& slot, uint64_t generation);
  void on_doorbell(WorkerSlot& rung, uint64_t generation);
  // The reactor's turn: drain, dispatch, publish, until it may sleep.
  void reactor_turn();
  void on_sweep();
  // The watchdog: every kWatchdogInterval while a worker holds calls or has
  // not yet said it is ready, the reactor reads every ring whatever the
  // doorbells say (a worker whose task closed its descriptors cannot ring),
  // and kills a worker that missed its start-up deadline.
  void on_watchdog();
  void arm_watchdog_locked();  // drain_mutex_ held
  // drain_mutex_ held: marks the workers and spares that said they are
  // ready (a start ends a row of failed starts), and kills those past
  // start_timeout.
  void note_starts_locked();
  bool watchdog_needed_locked() const;
  // A worker was given a call while it held none: makes sure the watchdog
  // runs (a post to the reactor when it had stopped).
  void wake_watchdog();
  // (Re)starts one of the reactor's timers (drain_mutex_ held); throws if
  // out of memory.
  void start_timer(std::unique_ptr<boost::asio::steady_timer>& timer, std::chrono::microseconds after,
                   void (PoolCore::*handler)());
  void fail_all_pending(const std::exception_ptr& error, Published& out);
  // Stop frame, SIGTERM, SIGKILL (or SIGKILL only); reaps all; fails what is left.
  void stop_workers(Published& out, StopMode mode);
  bool request_stop(ByteRing& requests) noexcept;  // writes a Stop frame if it fits

  // Dispatch (dispatch_mutex_ held).
  // Calls that fail on the way (refuse_locked) go into `out`, for the
  // caller to publish once it holds no lock.
  void dispatch_locked(Published& out);
  // How many calls `slot` may hold while calls wait on the host: its pace
  // (ControlBlock::call_ns) times kPacedPrefetchWork, within
  // [prefetch_, kPacedPrefetchMost]. Only with paced_prefetch_ (the user
  // set no count).
  size_t paced_room(const WorkerSlot& slot) const noexcept;
  static constexpr auto kPacedPrefetchWork = std::chrono::microseconds(100);
  // Every call a worker holds can be withdrawn at once (CancelList).
  static constexpr size_t kPacedPrefetchMost = kCancelSlots;
  static constexpr uint64_t kRoomReadEvery = 16;  // answers between reads of a worker's pace (WorkerSlot::room)
  void pump_locked(WorkerSlot& slot, Published& out);
  // Sleeping workers a submit's dispatch gave calls, woken by the
  // submitting thread once it has let go of the dispatch lock: a futex
  // wake is a system call (microseconds when the woken CPU is idle in a
  // VM), and the reactor taking answers would wait it out on the lock.
  // Only submit() sets `defer`; the rest wake at once, lock held. Guarded by
  // dispatch_mutex_. A wake that comes after the worker died and its
  // segment went finds no such futex (EFAULT) or wakes a waiter that
  // re-checks its condition: both harmless.
  struct DeferredWakes {
    bool defer = false;
    size_t count = 0;
    std::array<std::atomic<uint32_t>*, 4> words{};  // more in one dispatch: woken at once
    void wake_all() noexcept;
  };
  DeferredWakes deferred_wakes_;
  // A worker that held no call was just given one: arms its doorbell
  // unless a thread polls or a sweep is due.
  void expect_answers_locked(WorkerSlot& slot);
  bool calls_in_flight_locked() const;
  // cancel() of assigned[i], which is (at least partly) in the worker's
  // ring: true if the call is withdrawn for sure and its state claimed with
  // TaskCancelled set (cancel.cpp has the protocol).
  // Both mutexes held.
  bool withdraw_from_ring_locked(WorkerSlot& slot, size_t i, const char* why, bool* behind_unread = nullptr);
  bool worker_will_see_withdrawal_locked(WorkerSlot& slot, size_t i);
  // What appending assigned[i] to the worker's CancelList came to: not
  // appended (the host cannot prove the worker would see it), proven (the
  // worker will skip the call; the probe it did not need goes to
  // `unused_probe`), or raced (it may run the call: a WithdrawalProbe now
  // holds its place and passes on whatever the worker answers).
  enum class Withdrawal : uint8_t { refused, proven, raced };
  Withdrawal append_withdrawal_locked(WorkerSlot& slot, size_t i, bool* behind_unread = nullptr,
                                      std::shared_ptr<WithdrawalProbe>* unused_probe = nullptr);
  // A steal of assigned[i], which is wholly in the worker's ring: true if
  // the call is withdrawn for sure and now ends `moved` under a new id (a
  // claimed placeholder takes the worker's Skipped answer). Takes nothing
  // once `moved` is at its capacity: it may not allocate. Both mutexes held.
  bool take_back_locked(WorkerSlot& slot, size_t i, std::vector<TaskRecord>& moved);
  // A call sent again: a new task id, in its frame and its state's place.
  void renumber_locked(TaskRecord& record);
  // cancel() of assigned[0] with cancel_running: settles it with
  // TaskCancelled and stops the worker, unless its answer is arriving.
  bool stop_running_call_locked(WorkerSlot& slot, StateBase& state, Published& out);
  // Fails the call at assigned[sent], whose SharedBytes could not be sent
  // (error `err`).
  void refuse_locked(WorkerSlot& slot, int err, Published& out);

  // Deadlines and stopping a running call (deadlines.cpp, which has the
  // protocol). dispatch_mutex_ held: the front call may just have become
  // able to begin (its header was published, or the call ahead of it was
  // answered): starts its clock if it has a timeout. Inline: it is on the
  // path of every call, and costs a load and a branch when no timeout is set.
  void start_front_clock_locked(WorkerSlot& slot) {
    if (slot.front_deadline == std::chrono::steady_clock::time_point::max() && !slot.assigned.empty() &&
        slot.assigned.front().timeout_ms != 0)
      start_front_clock_slow(slot);
  }
  void start_front_clock_slow(WorkerSlot& slot);
  // Both mutexes held: arms the deadline timer for the earliest deadline.
  void arm_deadline_timer_locked();
  void on_deadline();
  // Both mutexes held: sets the worker's StopRequest and proves that the
  // worker will begin no call after its front one; false (the request
  // withdrawn) if the front call's answer has begun to arrive: it ended.
  bool request_stop_locked(WorkerSlot& slot);
  // Both mutexes held, after request_stop_locked: stops the worker running
  // its front call, which the caller has settled (SIGTERM and SIGKILL after
  // stop_grace, or SIGKILL at once; its process group too). The process
  // leaves the slot for stopping_workers_, the calls behind it are queued
  // again, and the slot gets a replacement at once.
  void stop_running_locked(WorkerSlot& slot, Published& out);
  // A stopped worker on its way out: killed after its grace, reaped (with
  // its process group) when its pidfd says it died. Guarded by drain_mutex_.
  struct StoppingWorker {
    pid_t pid = -1;
    std::unique_ptr<boost::asio::posix::stream_descriptor> pidfd;
    std::unique_ptr<WorkerSegment> segment;            // unmapped once it is reaped
    std::unique_ptr<boost::asio::steady_timer> grace;  // SIGKILL when it fires
    std::shared_ptr<OutputCapture> output;             // still read during the grace
  };
  std::list<StoppingWorker> stopping_workers_;
  void watch_stopping(std::list<StoppingWorker>::iterator it);  // its grace timer, and its death
  void watch_stopping_death(std::list<StoppingWorker>::iterator it);
  // drain_mutex_ held; the output it still had goes into `lines`.
  void reap_stopping_locked(std::list<StoppingWorker>::iterator it, std::vector<OutputLine>& lines);
  // Captured output (output_capture.hpp): each line to PoolOptions::on_output,
  // or to the host's stdout or stderr, prefixed. No pool lock held.
  void deliver_output(std::vector<OutputLine>& lines) noexcept;

  // ---- work stealing (work_stealing.cpp, which has the policy) ----
  // dispatch_mutex_ held: a worker has just run out of calls. If another
  // holds calls queued behind the one it runs, the reactor looks (on_steal).
  // Inline: on the path of every answer that empties a worker's queue.
  void note_idle_locked() {
    if (calls_queued_ && !steal_due_ && pending_.empty()) note_idle_slow();
  }
  void note_idle_slow();
  void on_steal();  // the reactor: steals what is due, or waits for when it will be
  // Both mutexes held: moves the queued calls of workers whose front call
  // has run kStealAfter or longer while a worker has none to the pool's
  // queue and dispatches them; returns how long until the next such front
  // call is due, if a worker is idle and one holds queued calls.
  std::optional<std::chrono::steady_clock::duration> steal_locked(Published& out);
  // Takes `slot`'s queued calls into `moved`, up to its capacity.
  void steal_from_locked(WorkerSlot& slot, std::vector<TaskRecord>& moved);
  // Puts them at the head of the queue and dispatches (or fails them, if
  // the queue cannot grow).
  void requeue_stolen_locked(std::vector<TaskRecord>& moved, Published& out);
  static constexpr auto kStealAfter = std::chrono::milliseconds(1);
  // A worker holding queued calls that has not begun its front call (a
  // microsecond's state, unless it was stopped from outside) is looked at
  // again after this: a stopped one costs a look every 10 ms, not every 1.
  static constexpr auto kStealRecheck = std::chrono::milliseconds(10);
  // on_steal is posted or its timer armed; cleared by on_steal when it
  // finds nothing to wait for. Guarded by dispatch_mutex_.
  bool steal_due_ = false;
  // A worker may hold calls behind its front: set by dispatch when it gives
  // a worker a call while it holds one, cleared by note_idle_slow when none
  // does. Calls that each find a worker free (a round trip at a time)
  // never set it, so an answer that empties a queue costs them one load.
  // Guarded by dispatch_mutex_.
  bool calls_queued_ = false;

  // Draining (drain_mutex_ held), in response_reader.cpp.
  void drain_locked(Published& out);
  // `dead`: the worker has died; a frame cut short by its death is not condemned.
  void drain_slot(WorkerSlot& slot, Published& out, bool dead = false);
  class SlotAnswers;  // read_responses' AnswerTaker for one slot
  // An answered call, taken off the front of its worker's queue.
  struct Answered {
    TaskRecord task;
    bool withdrawn = false;  // it was put on the worker's CancelList
    bool measured = false;   // its answer ends with a UsageTrailer (kMeasureUsage)
  };
  Answered take_front_locked(WorkerSlot& slot);  // both mutexes held
  // Decodes the answer, whose payload is `payload` then `rest`, into the
  // call's state (or fails it, and condemns the worker, if it is malformed).
  void settle_answer(WorkerSlot& slot, Answered& answered, const FrameHeader& header,
                     std::span<const std::byte> payload, std::span<const std::byte> rest, Published& out);
  // Kills a worker that broke the protocol. `blame_front`: the call at the
  // front of its queue, if any of it reached the worker, fails with
  // ProtocolError whatever the worker's `started` count says (a worker that
  // broke the protocol may have rewritten it); false when the broken frame
  // was an answer whose call has already failed. The first verdict on a
  // worker stands: a later one changes neither its reason nor its blame.
  void condemn(WorkerSlot& slot, const std::string& why, bool blame_front = true);
  // Large reassembly buffers, and the frame of a large call: kept after
  // use, given back once unused for kKeepLargeBuffer (a timer on the
  // reactor checks). Fresh pages cost more than the copy into them.
  void keep_large_buffer_locked(WorkerSlot& slot);
  void keep_spare_frame_locked(ByteBuffer& frame);  // both mutexes held
  void schedule_trim_locked();
  void on_trim();
  // After a reactor turn: in a burst of submits with calls in flight,
  // schedules a sweep instead of doorbells (see kSweepInterval). Otherwise
  // asks every worker to ring the doorbell on its next response, unless a
  // thread polls (then the last poller asks as it leaves) or a sweep is
  // due; true when a response arrived meanwhile (drain again before
  // sleeping).
  bool request_doorbells(bool calls_in_flight);
  // The same, drain_mutex_ held, whoever polls.
  bool request_doorbells_locked();

  // Workers' lives (worker_lives.cpp). on_death, both mutexes held: counts
  // a worker that died before it started (set-up, initializer,
  // start_timeout) and returns the PoolBroken error once max_failed_starts
  // did in a row; a worker that started resets the count. `forked_at` and
  // `seen_ready` are the worker's: the failure of one whose fork began
  // before the host last saw a start succeed is not counted (what a row is
  // when starts overlap: worker_lives.cpp). (A spare's death is counted the
  // same way, served being false.)
  std::exception_ptr count_start_locked(ControlBlock& control, pid_t pid,
                                        std::chrono::steady_clock::time_point forked_at, bool seen_ready,
                                        bool start_timed_out, bool served, int sig, int code);
  // Why worker `pid` failed to start, as text; `cause` gets the
  // initializer's exception, or the WorkerCrashed of a worker that died.
  std::string describe_failed_start(ControlBlock& control, pid_t pid, bool start_timed_out, int sig, int code,
                                    std::exception_ptr& cause) const;
  // on_death, both mutexes held: the error of a call whose worker a
  // resource limit killed (SIGXCPU, SIGXFSZ, a failed allocation), or null.
  std::exception_ptr limit_death_error(const TaskRecord& task, WorkerSlot& slot, int sig, int code) const;
  unsigned failed_starts_ = 0;  // in a row, pool-wide; guarded by drain_mutex_
  // When the host saw the latest start that succeeded (note_starts_locked,
  // or its death if it was not seen ready before); guarded by drain_mutex_.
  std::chrono::steady_clock::time_point last_start_seen_{};
  unsigned max_failed_starts() const noexcept { return std::max(1u, options_.max_failed_starts); }
  // Both mutexes held: a worker or spare is still starting (not ready, not
  // past start_timeout).
  bool start_pending_locked() const;
  // Both mutexes held: a worker was seen to have started; a row of failed
  // starts ends, and the forker is woken for what it held back.
  void end_failed_row_locked();
  // The crash-loop breaker (PoolOptions::crash_loop), dispatch_mutex_ held.
  // A call of `function_id` killed its worker: counts it, and opens the
  // breaker at crash_loop.count in a row within the window.
  void note_killing_call_locked(uint32_t function_id);
  // An answer of `function_id` came (its worker survived it): its streak
  // of kills ends; an open breaker stays open for its cool-down. Inline: on
  // the path of every answer, a test of a bool while the breaker is off.
  void note_answer_locked(uint32_t function_id) {
    if (!crash_loop_on_ || crash_streaks_.empty()) return;
    if (auto it = crash_streaks_.find(function_id); it != crash_streaks_.end()) it->second.kills = 0;
  }
  // Fails `task` with CrashLoopDetected if its function's breaker is open
  // (into `out`); true if it did.
  bool refuse_crash_looping_locked(TaskRecord& task, Published& out);
  struct CrashStreak {
    unsigned kills = 0;
    std::chrono::steady_clock::time_point first{};       // of the streak's kills
    std::chrono::steady_clock::time_point open_until{};  // the breaker's end
  };
  bool crash_loop_on_ = false;                               // crash_loop.count > 0; set at construction
  std::unordered_map<uint32_t, CrashStreak> crash_streaks_;  // by function id
  // Workers that ended their own lives (not crashes), for stats.
  std::atomic<uint64_t> retired_served_{0};  // max_tasks_per_child
  std::atomic<uint64_t> retired_memory_{0};  // max_worker_memory

  // Makes the settled states ready (their waiters wake, callbacks run) and
  // counts their outcomes in counters_.
  void publish(Published& states);
  void run_queued_callbacks();

  // ---- every shutdown (pool_shutdown.cpp) ----
  // accepting_ = false, closes admission (blocked submitters fail with
  // PoolShutdown), and with cancel_unstarted withdraws every call that
  // cancel() can prove not begun (cancel.cpp).
  void stop_accepting(bool cancel_unstarted);
  // Both mutexes held: cancel() without its case 4 (never stops a running
  // call), for every call held; those it settles go into `out`.
  void cancel_unstarted_locked(Published& out);
  // Cases 1 to 4 of cancel.cpp for `state` (4 only with `may_stop`); true
  // when it settled the state (not yet published) with TaskCancelled.
  // Calls a stopped worker's replacement refused go into `out`.
  // behind_unread: set when it failed because the worker is past the call
  // before it, whose answer the host has not read (cancel.cpp).
  bool withdraw_locked(StateBase& state, bool may_stop, const char* why, Published& out, bool* behind_unread = nullptr);
  // The states of the calls accepted and not yet settled.
  std::vector<std::shared_ptr<StateBase>> outstanding_calls();
  // shutdown(wait = false): once every outstanding call has settled, the
  // reactor runs on_drained, which halts the pool.
  void watch_drain();
  void on_drained();
  // Stops the workers and settles what is left, after the reactor stopped;
  // run by the thread that moved phase_ to Halting (or the reactor thread
  // for it), with no lock held.
  void finish_shutdown(StopMode mode);
  // On the reactor thread once io_.run() has returned.
  void finish_on_reactor();
  // phase_ >= Halting, `once` holds shutdown_mutex_: waits for Stopped,
  // then joins the reactor thread. Not on the reactor thread.
  void await_stopped(std::unique_lock<std::mutex>& once);
  void join_reactor();
  // Polls the pidfds until each has exited, `limit` at most.
  static void await_exits(std::vector<pollfd>& pidfds, std::chrono::milliseconds limit);
  static constexpr auto kReapLimit = std::chrono::milliseconds(5000);
  const char* function_name(uint32_t id) const;
  // Throws procpool::Error for options that cannot mean anything.
  static void check_options(const PoolOptions& options);
  // Why a process the pool was forked into may not use it, for errors.
  std::string why_not_here() const;

  PoolOptions options_;
  const pid_t owner_ = this_process();  // the process that made the pool
  size_t prefetch_ = 16;                // options_.prefetch_per_worker, or 16 unset (and then paced)
  bool paced_prefetch_ = true;          // prefetch_per_worker unset: paced_room may give more
  WorkerConfig worker_config_{};
  StartMethod start_method_ = StartMethod::fork;     // resolved from options_ when the pool is made
  std::unique_ptr<boost::asio::io_context> own_io_;  // null with PoolOptions::io_context
  boost::asio::io_context& io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread reactor_;
  std::thread::id reactor_id_;
  // Every shutdown. phase_, drain_watched_, finish_on_reactor_ and
  // finish_mode_ are guarded by shutdown_mutex_ (pool_shutdown.cpp has the
  // phases); stopped_cv_ is signalled when phase_ becomes Stopped.
  // join_mutex_ makes joining the reactor thread one thread's act.
  enum class Phase : uint8_t { Open, Draining, Halting, Stopped };
  Phase phase_ = Phase::Open;
  bool drain_watched_ = false;  // a shutdown(wait = false) watches the last calls
  // Set when the pool is halted from its own thread: keeps the core alive
  // until that thread, leaving io_.run(), has finished the shutdown.
  std::shared_ptr<PoolCore> finish_on_reactor_;
  StopMode finish_mode_ = StopMode::Terminate;
  std::condition_variable stopped_cv_;
  std::mutex join_mutex_;
  // max_pending (backpressure.cpp): null when unbounded, so that submit
  // pays one predictable branch. Set in the constructor, then read-only.
  std::shared_ptr<Backpressure> backpressure_;
  // Takes a place for `state` (Admission::Wait blocks; over the bound on
  // the pool's own thread), ties its release to the state's settlement;
  // false when it settled the state instead (PoolShutdown, PoolFull).
  bool admit(StateBase& state, uint32_t function_id, Admission admission);

  std::mutex callbacks_mutex_;
  std::vector<Callbacks> queued_callbacks_;  // for the reactor to run
  bool reactor_gone_ = false;                // then callbacks run where they are published
  std::vector<std::unique_ptr<WorkerSlot>> slots_;

  // The forker (worker_forker.cpp). spares_ and spares_wanted_ are guarded
  // by both mutexes (changed with both held, read with either);
  // forker_woken_ and forker_stop_ by forker_mutex_, which is taken after
  // the pool's mutexes, never before.
  std::list<ForkedWorker> spares_;  // oldest first
  bool spares_wanted_ = false;      // set by the first replacement
  // A spare taken is refilled no sooner than kSpareRefillDelay after.
  static constexpr auto kSpareRefillDelay = std::chrono::milliseconds(5);
  std::chrono::steady_clock::time_point refill_after_{};
  // Kills the workers' groups if the host dies with the pool alive
  // (group_sweeper.hpp). Told of each worker as it is forked and as it is
  // buried; stopped once stop_workers has reaped them all.
  GroupSweeper sweeper_;
  std::thread forker_;
  std::thread::id forker_id_;  // set before any other thread can look
  std::mutex forker_mutex_;
  std::condition_variable forker_cv_;
  bool forker_woken_ = false;
  bool forker_stop_ = false;
  unsigned fork_failures_ = 0;  // in a row; the forker thread's own

  SpinThenBlockMutex drain_mutex_;
  SpinThenBlockMutex dispatch_mutex_;
  std::atomic<int> pollers_{0};  // threads inside a PollingScope
  // Set by take_front_locked (both mutexes held) when the room an answer
  // made is wanted: calls wait in pending_, or a worker's are not all in its
  // ring. poll_responses clears it before its drain and dispatches after
  // only if it was set (an answer no call waits on then costs no second
  // lock). Guarded by drain_mutex_.
  bool answers_made_room_ = false;
  // Adaptive polling (poll_budget): > 0 while polling pays off; each wait
  // that polled in vain takes 4 off, each that did not adds 1.
  // Relaxed, unlocked updates: a lost one only nudges a heuristic.
  static constexpr int kMaxSpinScore = 8;
  mutable std::atomic<int> spin_score_{kMaxSpinScore};
  mutable std::atomic<unsigned> spin_probes_{0};
  std::deque<TaskRecord> pending_;

  // Sweeping instead of doorbells. While other threads submit calls faster
  // than the reactor could turn for each answer (kBurstSubmits or more
  // since its last look, at least one per kBurstSubmitInterval: a million
  // a second), a doorbell per answer would wake the reactor tens of
  // thousands of times a second, on CPUs the submitter and the workers
  // need: the reactor then leaves the doorbells disarmed and looks at the
  // rings every kSweepInterval instead, until a look finds no burst or no
  // call in flight. Threads that wait on a future poll for themselves
  // meanwhile; a callback may run up to a sweep interval (plus the timer's
  // slack) after its answer came. Rounds of fan-out and fan-in (16 calls,
  // then their callbacks) are slower than that rate, and submits from the
  // pool's own thread (callbacks that chain calls) are not counted: a
  // sweep would only delay them.
  static constexpr uint64_t kBurstSubmits = 8;
  static constexpr auto kBurstSubmitInterval = std::chrono::microseconds(1);
  static constexpr auto kSweepInterval = std::chrono::microseconds(50);
  // Submits by other threads. Written only under dispatch_mutex_ (a plain
  // load and store, no locked instruction), read by the reactor relaxed:
  // it is only counted.
  std::atomic<uint64_t> submitted_{0};
  // Guarded by drain_mutex_.
  uint64_t submitted_at_last_look_ = 0;
  std::chrono::steady_clock::time_point last_look_{};
  std::unique_ptr<boost::asio::steady_timer> sweep_timer_;
  // A sweep is scheduled: the doorbells may stay disarmed. Written under
  // drain_mutex_, read also by dispatchers (expect_answers_locked).
  std::atomic<bool> sweep_due_{false};
  static constexpr auto kWatchdogInterval = std::chrono::milliseconds(100);
  std::unique_ptr<boost::asio::steady_timer> watchdog_timer_;  // guarded by drain_mutex_
  bool watchdog_armed_ = false;                                // guarded by drain_mutex_
  // The watchdog runs or is about to. Read by dispatchers (seq_cst, after
  // their seq_cst store of calls_held) and cleared by the watchdog before
  // its last look at calls_held: one of the two sees the other.
  std::atomic<bool> watchdog_due_{false};
  // Deadlines: the timer fires at the earliest front call's deadline.
  // deadline_timer_ is touched under both mutexes; deadline_timer_at_
  // (guarded by dispatch_mutex_) is when it fires, max() if unarmed: a
  // deadline later than it needs nothing (the timer re-arms for it when it
  // fires); an earlier one posts a re-arm to the reactor.
  std::unique_ptr<boost::asio::steady_timer> deadline_timer_;
  std::unique_ptr<boost::asio::steady_timer> steal_timer_;  // work stealing's; touched under both mutexes
  std::chrono::steady_clock::time_point deadline_timer_at_ = std::chrono::steady_clock::time_point::max();
  static constexpr auto kKeepLargeBuffer = std::chrono::milliseconds(100);
  std::unique_ptr<boost::asio::steady_timer> trim_timer_;  // guarded by drain_mutex_
  bool trim_due_ = false;                                  // guarded by drain_mutex_
  ByteBuffer spare_frame_;                                 // guarded by dispatch_mutex_
  std::chrono::steady_clock::time_point spare_used_{};     // guarded by dispatch_mutex_
  TaskId next_task_ = 0;
  bool accepting_ = false;
  bool stopping_ = false;
  bool counted_in_registry_ = false;
  std::exception_ptr start_error_;  // why retired slots stopped forking
  std::mutex shutdown_mutex_;

  // What stats() reports. Relaxed atomics: each is a count on its own, read
  // by stats() with no claim to be one consistent snapshot.
  struct Counters : OutcomeCounters {
    std::atomic<uint64_t> worker_deaths{0}, respawns{0}, spares_taken{0}, stolen{0};
  };
  Counters counters_;

 public:
  // Counts a settled pool call under its outcome (publish() does, and so
  // does whoever settles a pool call outside it).
  void count_outcome(const StateBase& state) noexcept;
};

}  // namespace procpool::detail
