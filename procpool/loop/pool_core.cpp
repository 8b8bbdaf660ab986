// SPDX-License-Identifier: MIT
#include <procpool/loop/pool_core.hpp>

#include <boost/asio/post.hpp>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <future>

#include <procpool/common/errors.hpp>
#include <procpool/common/function_registry.hpp>
#include <procpool/common/type_name.hpp>
#include <procpool/loop/host_room.hpp>
#include <procpool/sandbox/namespaces.hpp>
#include <procpool/sandbox/seccomp_filter.hpp>
#include <procpool/worker/start_state.hpp>

namespace procpool::detail {

PoolCore::PoolCore(PoolOptions options)
    : options_(std::move(options)),
      own_io_(options_.io_context ? nullptr : std::make_unique<boost::asio::io_context>()),
      io_(options_.io_context ? *options_.io_context : *own_io_) {
  if (own_io_) work_.emplace(io_.get_executor());
  if (options_.workers == 0) options_.workers = std::max(1u, std::thread::hardware_concurrency());
  check_options(options_);  // before anything starts
  check_host_room(options_);
  options_.ring_bytes = std::bit_ceil(std::max<size_t>(options_.ring_bytes, 4096));
  paced_prefetch_ = !options_.prefetch_per_worker;
  prefetch_ = std::max<size_t>(options_.prefetch_per_worker.value_or(16), 1);
  crash_loop_on_ = options_.crash_loop.count > 0;
  check_sandbox(options_.sandbox);  // before any thread or worker: a refused sandbox starts nothing
  check_namespaces(namespace_flags(options_.namespaces));
  start_method_ = options_.start_method.value_or(
      default_start_method().value_or(options_.sandbox.enabled() ? StartMethod::forkserver : StartMethod::fork));
  check_start_method(start_method_, options_.worker_program);
  if (options_.max_pending != 0) backpressure_ = std::make_shared<Backpressure>(options_.max_pending);
}

void PoolCore::check_options(const PoolOptions& options) {
  auto refuse = [](const std::string& why) { throw Error("PoolOptions::" + why); };
  if (options.ring_bytes > kMaxRingBytes)
    refuse("ring_bytes is " + std::to_string(options.ring_bytes) + ", over the largest ring, " +
           std::to_string(kMaxRingBytes) + " bytes (a larger call or result streams through the ring anyway)");
  if (options.start_timeout.count() <= 0)
    refuse("start_timeout is " + std::to_string(options.start_timeout.count()) +
           " ms: a worker needs some time to start (the default is 5000 ms)");
  if (options.prefetch_per_worker == size_t{0})
    refuse("prefetch_per_worker is 0: a worker must be handed at least one call (unset: paced, 16 to 256)");
}

std::shared_ptr<PoolCore> PoolCore::make(PoolOptions options) {
  return std::shared_ptr<PoolCore>(new PoolCore(std::move(options)), [](PoolCore* core) {
    if (!core->in_another_process()) return delete core;
    // Reachable from here, so that a leak checker does not report it (the
    // child may have threads of its own by now).
    static auto* kept = new std::vector<PoolCore*>;
    static std::mutex keeping;
    std::lock_guard lock(keeping);
    kept->push_back(core);
  });
}

PoolCore::~PoolCore() {
  halt(StopMode::Terminate);
  stop_forker();  // joined at the halt's end already, whoever finished it
  // The last reference may be dropped on the reactor thread (the pool
  // destroyed in its own callback, finished there): it cannot join itself.
  if (reactor_.joinable()) {
    if (std::this_thread::get_id() == reactor_id_) reactor_.detach();
    else reactor_.join();
  }
}

void PoolCore::start() {
  sweeper_.start();  // before the first worker exists
  worker_config_ = WorkerConfig{options_.max_message_bytes, options_.worker_spin, -1, -1, options_.close_fds};
  worker_config_.output = options_.worker_output;
  worker_config_.max_calls = options_.max_tasks_per_child;
  worker_config_.max_rss = options_.max_worker_memory;
  worker_config_.initializer = options_.initializer.encoded();  // options_ outlives every worker's fork
  worker_config_.limits = options_.limits;
  if (options_.sandbox.enabled()) worker_config_.sandbox = &options_.sandbox;  // options_ outlives every fork
  worker_config_.namespace_flags = namespace_flags(options_.namespaces);
  for (size_t i = 0; i < options_.workers; ++i) {
    auto slot = std::make_unique<WorkerSlot>();
    slot->index = i;
    slots_.push_back(std::move(slot));
  }
  FunctionRegistry::instance().pool_started();
  counted_in_registry_ = true;
  forker_ = std::thread([this] { forker_main(); });
  forker_id_ = forker_.get_id();
  if (!own_io_) {
    // The user's io_context: fork the first workers from this thread.
    try {
      std::scoped_lock lock(drain_mutex_, dispatch_mutex_);
      for (auto& slot : slots_) install_locked(*slot, fork_worker());
      accepting_ = true;
    } catch (...) {
      halt(StopMode::Terminate);
      throw;
    }
    return;
  }
  reactor_ = std::thread([this] {
    // A handler that throws must not take the host down with it: report it
    // and keep the reactor going (Asio allows run() again after a throw).
    for (;;) {
      try {
        io_.run();
        break;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "procpool: the pool's reactor caught %s: %s\n", demangle(typeid(e).name()).c_str(),
                     e.what());
      } catch (...) {
        std::fprintf(stderr, "procpool: the pool's reactor caught a non-standard exception\n");
      }
    }
    // Halted from this thread (the pool destroyed in a callback, or the
    // last call of a shutdown(wait = false) done): finish here, now that no
    // handler of ours is on the stack.
    finish_on_reactor();
  });
  reactor_id_ = reactor_.get_id();

  std::promise<void> started;
  boost::asio::post(io_, [this, &started] {
    try {
      std::scoped_lock lock(drain_mutex_, dispatch_mutex_);
      for (auto& slot : slots_) install_locked(*slot, fork_worker());
      accepting_ = true;
      started.set_value();
    } catch (...) {
      started.set_exception(std::current_exception());
    }
  });
  try {
    started.get_future().get();
  } catch (...) {
    halt(StopMode::Terminate);
    throw;
  }
}

std::vector<pid_t> PoolCore::worker_pids() {
  refuse_in_another_process("ProcessPool::worker_pids()");
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

// ---- the doorbell: the reactor's wake-up for responses and freed space ----

std::string PoolCore::why_not_here() const {
  return "the pool belongs to process " + std::to_string(owner_) + ", and this process (" +
         std::to_string(this_process()) +
         ") is a fork of it: its workers, rings and threads stayed with that process; make a pool in this one";
}

void PoolCore::refuse_in_another_process(const char* what) const {
  if (in_another_process()) [[unlikely]]
    throw Error(std::string(what) + ": " + why_not_here());
}

bool PoolCore::on_own_thread() const noexcept {
  return own_io_ ? std::this_thread::get_id() == reactor_id_ : io_.get_executor().running_in_this_thread();
}

void PoolCore::arm_doorbell_locked(WorkerSlot& slot) {
  // Under the drain lock, so that shutdown (which closes the doorbells under
  // it, after setting stopping_) cannot close one while it is being armed.
  if (stopping_ || !slot.doorbell) return;
  // Handlers hold the core only weakly: on a user's io_context they may run
  // after the pool is gone (cancelled), and while one runs it keeps the core.
  slot.doorbell->async_wait(
      boost::asio::posix::stream_descriptor::wait_read,
      [weak = weak_from_this(), &slot, generation = slot.doorbell_generation](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (!ec && self) self->on_doorbell(slot, generation);
      });
}

void PoolCore::arm_doorbell(WorkerSlot& slot, uint64_t generation) {
  std::lock_guard drain(drain_mutex_);
  // A new process took the slot meanwhile: its own doorbell is armed.
  if (generation == slot.doorbell_generation) arm_doorbell_locked(slot);
}

void PoolCore::on_doorbell(WorkerSlot& rung, uint64_t generation) {
  {
    std::lock_guard drain(drain_mutex_);
    // An earlier process's doorbell, whose wait completed before the slot
    // took a new one: that one has its own wait.
    if (stopping_ || !rung.doorbell || generation != rung.doorbell_generation) return;
    uint64_t count;
    ssize_t r = ::read(rung.doorbell->native_handle(), &count, sizeof count);
    (void)r;
  }
  // Wait for the next ring even if this turn throws (out of memory): the
  // reactor's loop reports the exception and goes on. (Not from a
  // destructor: arming can throw too.)
  try {
    reactor_turn();
  } catch (...) {
    arm_doorbell(rung, generation);
    throw;
  }
  arm_doorbell(rung, generation);
}

void PoolCore::on_sweep() {
  {
    std::lock_guard drain(drain_mutex_);
    sweep_due_.store(false, std::memory_order_seq_cst);
    if (stopping_) return;
  }
  reactor_turn();
}

void PoolCore::reactor_turn() {
  bool calls_in_flight = false;
  try {
    do {
      Published out;
      {
        std::lock_guard drain(drain_mutex_);
        drain_locked(out);
      }
      {
        std::lock_guard dispatch(dispatch_mutex_);
        dispatch_locked(out);
        calls_in_flight = calls_in_flight_locked();
      }
      publish(out);
    } while (request_doorbells(calls_in_flight));
  } catch (...) {
    // Out of memory mid-turn: maybe no sweep is due and no doorbell armed.
    // Arm them all, so that no answer waits for a thread that happens to
    // poll, before the reactor's loop reports the exception.
    std::lock_guard drain(drain_mutex_);
    if (!stopping_) request_doorbells_locked();
    throw;
  }
}

void PoolCore::start_timer(std::unique_ptr<boost::asio::steady_timer>& timer, std::chrono::microseconds after,
                           void (PoolCore::*handler)()) {
  if (!timer) timer = std::make_unique<boost::asio::steady_timer>(io_);
  timer->expires_after(after);
  // The handler holds the core only weakly, as the doorbells' do.
  timer->async_wait([weak = weak_from_this(), handler](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (!ec && self) (self.get()->*handler)();
  });
}

bool PoolCore::calls_in_flight_locked() const {
  return !pending_.empty() || std::any_of(slots_.begin(), slots_.end(), [](auto& s) { return !s->assigned.empty(); });
}

bool PoolCore::request_doorbells(bool calls_in_flight) {
  std::lock_guard drain(drain_mutex_);
  if (stopping_ || sweep_due_.load(std::memory_order_relaxed)) return false;  // the sweep looks again
  uint64_t submitted = submitted_.load(std::memory_order_relaxed);
  auto now = std::chrono::steady_clock::now();
  uint64_t since = submitted - submitted_at_last_look_;
  bool burst = since >= kBurstSubmits && now - last_look_ <= since * kBurstSubmitInterval;
  submitted_at_last_look_ = submitted;
  last_look_ = now;
  if (burst && calls_in_flight) {
    // Doorbells a poller left armed ring once more at most, harmlessly.
    try {
      start_timer(sweep_timer_, kSweepInterval, &PoolCore::on_sweep);
      sweep_due_.store(true, std::memory_order_relaxed);
      return false;
    } catch (...) {
      // Out of memory for the timer: doorbells, as outside a burst.
    }
  }
  // A poller drains for the reactor; the last one to leave re-arms. Read
  // under drain_mutex_, which end_polling() takes after its decrement: either
  // this sees no poller, or that re-arm comes after this returns.
  if (pollers_.load(std::memory_order_acquire) > 0) return false;
  return request_doorbells_locked();
}

bool PoolCore::request_doorbells_locked() {
  bool more = false;
  for (auto& slot : slots_) {
    // A worker that holds no call has nothing to ring for; the dispatch of
    // its next call arms it if nobody polls (expect_answers_locked).
    if (!slot->alive || !slot->condemned.empty() || slot->calls_held.load(std::memory_order_seq_cst) == 0) continue;
    announce_sleep(slot->segment->header().response.data_event);
    try {
      // Any byte counts: a frame cut short is condemned by the drain.
      more |= slot->responses.readable() > 0;
    } catch (const RingCorrupt&) {
      more = true;  // the next drain condemns it
    }
  }
  return more;
}

bool PoolCore::poll_responses() {
  if (in_another_process()) return false;  // the rings are the parent's (and not mapped here)
  Published out;
  bool made_room = false;
  {
    std::unique_lock drain(drain_mutex_, std::try_to_lock);
    if (!drain) return false;
    // Withdraw the doorbell requests the reactor left armed: pollers look
    // at the rings themselves until the last calls end_polling().
    // (Read first: an RMW on every poll would pull the worker's cache line.)
    if (pollers_.load(std::memory_order_relaxed) > 0)
      for (auto& slot : slots_) {
        if (!slot->alive || !slot->condemned.empty()) continue;
        auto& event = slot->segment->header().response.data_event;
        if (event.load(std::memory_order_relaxed) & kSleeperBit) withdraw_sleep(event);
      }
    answers_made_room_ = false;
    drain_locked(out);
    made_room = answers_made_room_;
  }
  if (out.empty()) return false;
  // A call submitted after an answer's take sees its room itself (it takes
  // the dispatch lock after that take); one queued before it is what
  // answers_made_room_ saw.
  if (made_room) {
    std::lock_guard dispatch(dispatch_mutex_);
    dispatch_locked(out);
  }
  publish(out);
  return true;
}

void PoolCore::polled(bool productive) noexcept {
  int score = spin_score_.load(std::memory_order_relaxed);
  // One probe that pays turns polling back on; two in vain in a row off.
  score = productive ? std::clamp(score + 1, 1, kMaxSpinScore) : std::max(score - 4, -kMaxSpinScore);
  spin_score_.store(score, std::memory_order_relaxed);
}

void PoolCore::end_polling() {
  // seq_cst: paired with expect_answers_locked (see there).
  if (pollers_.fetch_sub(1, std::memory_order_seq_cst) != 1 || in_another_process()) return;
  // No worker holds a call: none has an answer to ring for, and there is
  // nothing to re-arm (request_doorbells_locked would skip every slot).
  // The same seq_cst read of calls_held as there, so the pairing with
  // expect_answers_locked holds: a dispatcher whose store this read missed
  // reads pollers_ after this thread's decrement, and arms its worker.
  if (std::none_of(slots_.begin(), slots_.end(),
                   [](const auto& s) { return s->calls_held.load(std::memory_order_seq_cst) > 0; }))
    return;
  Published out;
  {
    // Blocking, and in the same critical section as the re-arm: an answer
    // published while the doorbells were off rang nothing, and a try_lock
    // that lost to the reactor (busy elsewhere) would leave it in the ring.
    std::lock_guard drain(drain_mutex_);
    if (stopping_) return;
    if (request_doorbells_locked()) drain_locked(out);
  }
  if (out.empty()) return;
  {
    std::lock_guard dispatch(dispatch_mutex_);
    dispatch_locked(out);
  }
  publish(out);
}

std::chrono::nanoseconds PoolCore::poll_budget(size_t request_bytes) const noexcept {
  // A large call costs at least two copies of its payload each way before
  // its answer can arrive; sleeping meanwhile would add a worker -> reactor
  // -> waiter relay of two wake-ups. So a waiter on a large call polls for
  // about as long as those copies take (0.5 ns a byte: ~2 GB/s), up to 2 ms.
  if (options_.host_spin.count() == 0) return {};
  // Calls that outlast the budget (CPU-bound tasks) would have a waiter burn
  // a core the workers need, then sleep anyway: while polling does not pay
  // off, only every 16th wait polls, to notice when calls get short again.
  if (spin_score_.load(std::memory_order_relaxed) <= 0 &&
      spin_probes_.fetch_add(1, std::memory_order_relaxed) % 16 != 0)
    return {};
  auto copies = std::chrono::nanoseconds(static_cast<long long>(request_bytes / 2));
  return std::max<std::chrono::nanoseconds>(options_.host_spin,
                                            std::min<std::chrono::nanoseconds>(copies, std::chrono::milliseconds(2)));
}

void PoolCore::publish(Published& states) {
  // A state is ready before its callbacks are handed to the reactor; if the
  // hand-over fails (out of memory), the states after it must still become
  // ready, or their waiters would wait for ever.
  for (auto& s : states) {
    // A withdrawal probe settled by a Skipped answer is not the call's end:
    // the call is queued again (cancel.cpp) and counted when it settles.
    if (!(s->place.withdrawn && s->cancelled())) count_outcome(*s);
    try {
      s->publish();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "procpool: the callbacks of a settled call could not be queued: %s\n", e.what());
    }
  }
}

}  // namespace procpool::detail
