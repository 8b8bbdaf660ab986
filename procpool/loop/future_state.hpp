// SPDX-License-Identifier: MIT
#pragma once
// The shared state behind a Future: settled exactly once (value or
// exception), waited on by any number of threads, with callbacks run once.
//
// status_ goes kPending -> kClaimed -> kReady. try_claim() is the single
// CAS that decides who settles the state (a response, a crash, shutdown:
// the first wins); the winner writes the value or error, then publish()
// stores kReady (release) so a reader that loads kReady (acquire) sees them.
//
// A state is small (a pending call's host memory is mostly its state), so
// it has no mutex or condition variable: a blocked waiter sets kWaiters in
// status_ and sleeps in futex(2) on it; publish() swaps in kReady and wakes
// only if the bit was set. The waiter sets the bit with a CAS against the
// value it then passes to futex_wait, so a publish in between makes the
// wait return at once: no lost wake-up. Callbacks, rare on the blocking
// path, live behind one pointer under a one-byte spin lock.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

#include <procpool/common/archive.hpp>
#include <procpool/common/constructed.hpp>
#include <procpool/loop/pool_stats.hpp>

namespace procpool {
template <class T>
class Result;
class RemoteOrigin;
}  // namespace procpool

namespace procpool::detail {

// Results (map with return_exceptions, a gather's) are made in this process
// or decoded by the state that expects them (OutcomeChunkState), never by
// cereal: cereal would take any vector for loadable.
template <class T>
inline constexpr bool kResultVector = false;
template <class T>
inline constexpr bool kResultVector<std::vector<Result<T>>> = true;

// True if `error` holds an E (a null one holds nothing).
template <class E>
bool holds_error(const std::exception_ptr& error) noexcept {
  if (!error) return false;
  try {
    std::rethrow_exception(error);
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
}

// Something that can make progress on outstanding results from a waiting
// thread (the pool: it drains response rings). Lets a blocked get() poll the
// rings itself for a moment instead of paying for two thread wake-ups.
using Callbacks = std::vector<std::function<void()>>;

// The worker process an answer came from and the function it ran.
struct AnswerSource {
  const std::string& function;
  pid_t pid;
};

class StateBase;

class Poller {
 public:
  virtual ~Poller() = default;
  // Drains whatever responses have arrived, if no other thread is at it;
  // true if it took any.
  virtual bool poll_responses() = 0;
  // While any thread is between begin_polling() and end_polling(), workers
  // do not ring the reactor's doorbell: the polling thread drains instead,
  // which saves a syscall in the worker and a wake-up of the reactor per
  // burst of responses. end_polling() of the last poller re-arms the
  // doorbells (and drains what slipped in before they were armed).
  virtual void begin_polling() noexcept = 0;
  virtual void end_polling() = 0;
  // True on the pool's own thread, where a blocking wait would deadlock.
  virtual bool on_own_thread() const noexcept = 0;
  // True in a process that fork() copied the pool into: the pool's
  // workers, rings and threads are its parent's (owner_process()), so a
  // call pending there can never settle here.
  virtual bool in_another_process() const noexcept { return false; }
  virtual pid_t owner_process() const noexcept { return 0; }
  // Runs a settled state's callbacks on the pool's own thread.
  virtual void run_callbacks(Callbacks callbacks) = 0;
  // Withdraws the call behind `state` if it can prove the call will not
  // run; true exactly then (the state is then settled with TaskCancelled).
  // The rule, queue by queue, is at the top of loop/cancel.cpp.
  virtual bool cancel(StateBase& state) = 0;
  // The same, but never by stopping a worker: true only for a call no
  // worker has begun (nor may begin: the front of a worker's ring is not
  // withdrawn). A pool that cannot tell says false.
  virtual bool withdraw(StateBase& state) {
    (void)state;
    return false;
  }
  // Where the unsettled call behind `state` is: pending (queued, or in a
  // worker's ring not begun) or running (its worker has begun it).
  virtual CallStatus status_of(const StateBase& state) = 0;
  // How long a waiting thread polls before it sleeps, for a call whose
  // encoded request is `request_bytes` long.
  // Zero when polling has lately not paid off (see PoolCore::polled).
  virtual std::chrono::nanoseconds poll_budget(size_t request_bytes) const noexcept = 0;
  // Whether a wait's polling paid off (its answer came, or it took others'
  // answers off the rings): the budget adapts.
  virtual void polled(bool productive) noexcept = 0;
};

class PollingScope {
 public:
  explicit PollingScope(Poller& poller) noexcept : poller_(poller) { poller_.begin_polling(); }
  ~PollingScope();
  PollingScope(const PollingScope&) = delete;
  PollingScope& operator=(const PollingScope&) = delete;

 private:
  Poller& poller_;
};

class StateBase {
 public:
  StateBase() noexcept;
  StateBase(const StateBase&) = delete;
  StateBase& operator=(const StateBase&) = delete;
  virtual ~StateBase();

  bool ready() const noexcept { return (status_.load(std::memory_order_acquire) & kStage) == kReady; }
  // Someone has begun to settle it (it may not be ready yet).
  bool claimed() const noexcept { return (status_.load(std::memory_order_acquire) & kStage) != kPending; }
  bool try_claim() noexcept;
  // After a successful try_claim().
  void set_error(std::exception_ptr error) noexcept { error_ = std::move(error); }
  // `from`: who answered, for the exceptions a result holds (a map's
  // per-element outcomes). Throws DecodeError.
  virtual void load_value(InputArchive& in, const AnswerSource& from) = 0;
  // A void result: an empty Value frame needs no decoding at all.
  virtual bool void_value() const noexcept = 0;
  // An Exception answer's records (exception_codec.hpp): what the call
  // fails with. Rebuilt as the exceptions they describe; a state that
  // relays answers elsewhere unread (an MPI agent's) keeps the bytes and
  // returns null, settling with them as its value. Throws DecodeError.
  virtual std::exception_ptr load_exception(InputArchive& in, const AnswerSource& from);
  void publish();
  // Claims, sets the error and publishes; false if someone settled first.
  bool settle_error(std::exception_ptr error);
  // The same with the error of `failed` (ready, failed) and its origin: a
  // map fails as its earliest failed chunk.
  bool settle_as(const StateBase& failed);

  void wait();
  bool wait_until(std::chrono::steady_clock::time_point deadline);
  // Runs `callback` once when ready: at once on this thread if it already
  // is, else on the thread that publishes.
  void on_ready(std::function<void()> callback);
  // The same for a callback that is safe on any thread and quick (it only
  // posts somewhere): it runs on the thread that settles the state, saving
  // the hop to the pool's thread.
  void on_ready_anywhere(std::function<void()> callback);
  // Runs `callback` once on the settling thread when the state is settled,
  // before it becomes ready: before any waiter can see it or any other
  // callback runs (the pool gives back a max_pending place there, so that
  // a get() that returned has freed it). Only before the state is shared
  // with a thread that could settle it; at once if it is already ready.
  void before_ready(std::function<void()> callback);
  std::shared_ptr<Poller> poller() const noexcept { return poller_.lock(); }
  // Set once, before the state is shared with another thread (submit, or
  // for a call that waits for room at max_pending, when its Future is
  // made): waiters read poller_ without a lock.
  void set_poller(std::weak_ptr<Poller> poller, size_t request_bytes) noexcept {
    poller_ = std::move(poller);
    set_request_bytes(request_bytes);
  }
  bool has_poller() const noexcept { return !poller_.expired(); }
  // The call's size, once it is encoded (a waiter may read it meanwhile).
  void set_request_bytes(size_t request_bytes) noexcept {
    request_bytes_.store(static_cast<uint32_t>(std::min<size_t>(request_bytes, UINT32_MAX)), std::memory_order_relaxed);
  }
  // Asks the pool to withdraw the call (Poller::cancel). A map's state
  // cancels its chunks instead (pool_map.hpp, MapState).
  virtual bool cancel() {
    auto poller = poller_.lock();
    return poller && !ready() && poller->cancel(*this);
  }
  // Poller::withdraw: cancel() that never stops a worker.
  bool withdraw() {
    auto poller = poller_.lock();
    return poller && !ready() && poller->withdraw(*this);
  }
  // After ready(): whether it settled with an error, and which.
  bool failed() const noexcept { return error_ != nullptr; }
  // After ready(): it failed with TaskCancelled (a cancellation, not an
  // exception the call raised).
  bool cancelled() const noexcept;
  std::exception_ptr error() const noexcept { return error_; }
  void rethrow_if_error() const {
    if (error_) std::rethrow_exception(error_);
  }

  // Where the pool holds the call behind this state, so that cancel() finds
  // it in O(1). Guarded by the pool's dispatch mutex; meaningless elsewhere.
  struct PoolPlace {
    uint64_t task_id = 0;
    int slot = -1;               // -1: in the pool's own queue; else the worker slot
    bool withdrawn = false;      // put on that worker's CancelList
    uint32_t cancel_entry = 0;   // then: the list's count before its entry
    bool cancel_running = true;  // cancel() stops the worker running it (CallOptions)
  };
  PoolPlace place;
  // A measured call's cost (CallOptions::measure_usage): set by whoever
  // settles it, after try_claim() and before publish(), so a reader that
  // saw ready() sees it; null for a call not measured.
  void set_usage(const CallUsage& usage) { usage_ = std::make_unique<CallUsage>(usage); }
  const CallUsage* usage() const noexcept { return usage_.get(); }
  // Where the exception it failed with was raised, when a worker's
  // Exception answer settled it (load_exception sets it, after try_claim()
  // and before publish(), as usage); null otherwise.
  const std::shared_ptr<const RemoteOrigin>& origin() const noexcept { return origin_; }
  // Set by the pool when sending this call had to wake its worker from sleep.
  void note_woke_worker() noexcept { woke_worker_.store(true, std::memory_order_relaxed); }

  // Shared states alive in this process (tests check it returns to zero).
  static long live_count() noexcept;
  // Runs each callback; one that throws is reported on stderr (nobody on
  // the thread that runs it could catch it) and the others still run.
  static void run_each(Callbacks& callbacks) noexcept;
  static void run_one(const std::function<void()>& callback) noexcept;

 protected:
  std::atomic<bool> taken_{false};        // the value was moved out by get()
  std::atomic<bool> woke_worker_{false};  // a hint for poll_for_a_while only

 private:
  // The stage (two low bits) and whether a thread sleeps on the word.
  static constexpr uint32_t kPending = 0, kClaimed = 1, kReady = 2, kStage = 3, kWaiters = 4;
  struct CallbackLists {
    Callbacks pool_thread;  // on_ready
    Callbacks anywhere;     // on_ready_anywhere
    Callbacks first;        // before_ready
  };
  // Guards callbacks_ and the kReady transition: a callback is either in the
  // lists publish() takes or added after kReady (and run at once), never both
  // or neither. Held for a push_back or a pointer swap only.
  class SpinGuard {
   public:
    explicit SpinGuard(std::atomic_flag& flag) noexcept;
    ~SpinGuard() { flag_.clear(std::memory_order_release); }
    SpinGuard(const SpinGuard&) = delete;
    SpinGuard& operator=(const SpinGuard&) = delete;

   private:
    std::atomic_flag& flag_;
  };
  void poll_for_a_while(std::chrono::steady_clock::time_point deadline);
  // Appends to one of the lists, or runs the callback now if the state is ready.
  void add_callback(Callbacks CallbackLists::*list, std::function<void()> callback);

  // Small fields first, packed: each pending call holds one state.
  std::atomic<uint32_t> status_{kPending};
  std::atomic<uint32_t> request_bytes_{0};  // only sizes the poll budget: saturates
  std::atomic_flag callbacks_lock_;         // clear: unlocked (C++20 value-initialises it)
  // before_ready was called: publish() runs `first` (set before the state
  // is shared, so publish reads it unlocked; in the padding, free).
  bool has_first_ = false;
  std::exception_ptr error_;
  std::unique_ptr<CallbackLists> callbacks_;
  std::weak_ptr<Poller> poller_;
  std::unique_ptr<CallUsage> usage_;
  std::shared_ptr<const RemoteOrigin> origin_;
};

[[noreturn]] void throw_already_taken(const char* call);  // "get()" or "result()"
[[noreturn]] void throw_no_state();
// Throws procpool::Error, the message starting with `what`, where a wait
// that blocks on `poller`'s calls would never end: in a process the pool
// was forked into, or on the pool's own thread (its answers are published
// there). Returns otherwise.
void refuse_blocking_wait(const Poller& poller, const char* what);
// The first half of it, for a callback (then(), co_await) on a state not
// yet settled: in a process the pool was forked into it would never run.
void refuse_in_another_process(const Poller& poller, const char* what);
void refuse_in_another_process(const StateBase& state, const char* what);

template <class T>
class SharedState : public StateBase {
 public:
  bool void_value() const noexcept override { return std::is_void_v<T>; }
  void load_value(InputArchive& in, const AnswerSource&) override {
    if constexpr (std::is_void_v<T>) {
    } else if constexpr (!kResultVector<T> && std::is_default_constructible_v<T> &&
                         cereal::traits::is_input_serializable<T, InputArchive>::value) {
      value_.emplace();
      in(*value_);
    } else if constexpr (kBuiltByLoadAndConstruct<T> && std::is_move_constructible_v<T>) {
      value_.emplace(load_constructed<T>(in));
    } else {
      (void)in;  // a result made in this process only (a task's, a thread's)
      throw DecodeError("this type is not carried across processes");
    }
  }
  // After a successful try_claim(), for values made in this process.
  template <class... U>
  void set_value(U&&... v) {
    if constexpr (!std::is_void_v<T>) value_.emplace(std::forward<U>(v)...);
  }
  // After ready(): the value, moved out once.
  T take();
  // After ready(): the value, left in place for take() (a copy is made of
  // it); rethrows the error. Not concurrently with take().
  template <class U = T>
  const U& peek() const {
    rethrow_if_error();
    if (taken_.load(std::memory_order_acquire)) throw_already_taken("result()");
    return *value_;
  }

 protected:
  struct Empty {};
  [[no_unique_address]] std::conditional_t<std::is_void_v<T>, Empty, std::optional<T>> value_;
};

template <class T>
T SharedState<T>::take() {
  rethrow_if_error();
  if (taken_.exchange(true, std::memory_order_acq_rel)) throw_already_taken("get()");
  if constexpr (!std::is_void_v<T>) return std::move(*value_);
}

}  // namespace procpool::detail
