// SPDX-License-Identifier: MIT
#pragma once
// Admission to a pool with PoolOptions::max_pending: at most `limit` calls
// held (queued in the host or in workers' rings, not yet settled).
//
// A call takes a place when it is admitted and gives it back when its
// state settles, whoever settles it (an answer, a crash, a cancel, a
// deadline, shutdown): the release is a callback on the state, which runs
// exactly once, before the state becomes ready (StateBase::before_ready),
// so a thread whose get() returned finds the place free. A caller that finds no place joins a FIFO of waiters; a
// place given back goes straight to the first waiter (held_ does not
// change), so a newcomer never overtakes one that waits, and one release
// wakes one waiter. close() (any shutdown) refuses every waiter and every
// later request.
//
// Thread safety: every member may be called from any thread. mutex_ guards
// held_, closed_, queue_ and each queued Waiter's decided/admitted; grant
// callbacks run with it released.
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

namespace procpool::detail {

class StateBase;

// How a submit asks for a place (PoolCore::submit).
enum class Admission : uint8_t {
  Wait,      // block until there is room (over the bound on the pool's own thread)
  Try,       // fail at once with PoolFull when there is none
  Reserved,  // the caller holds a place, tied to the state already (submit_async, run_in_executor)
};

class Backpressure final : public std::enable_shared_from_this<Backpressure> {
 public:
  enum class Outcome : uint8_t { Admitted, Full, Closed };
  struct Waiter {
    // Called once with true (a place is now the waiter's) or false (closed),
    // on the thread that released the place or closed, no lock held. Empty
    // for a blocked thread, which the condition variable wakes instead.
    std::function<void(bool admitted)> grant;
    bool decided = false;   // guarded by Backpressure::mutex_ while queued
    bool admitted = false;  // likewise
  };

  explicit Backpressure(size_t limit) noexcept : limit_(limit) {}
  size_t limit() const noexcept { return limit_; }
  // Calls holding a place now (for the PoolFull message and tests).
  size_t held() const;

  // A place now if one is free and nobody waits for one; never blocks.
  Outcome try_acquire();
  // Blocks until a place is free (Admitted) or the pool shuts down (Closed).
  Outcome acquire();
  // A place even over the bound (the pool's own thread, which must not
  // wait for itself): Closed only after shutdown.
  Outcome acquire_over_bound();
  // A place now (Admitted), or `waiter` joins the queue (Full) and its
  // grant is called later, or Closed.
  Outcome acquire_or_queue(const std::shared_ptr<Waiter>& waiter);
  // Takes a queued waiter out: Full if it was still waiting (its grant will
  // never be called), else how it was decided (an Admitted one holds a
  // place the caller must release).
  Outcome withdraw(const std::shared_ptr<Waiter>& waiter);
  // Gives a place back: to the first waiter, or to the pool.
  void release() noexcept;
  // Ties a held place to `state`: given back when the state settles.
  void release_when_settled(StateBase& state);
  // Shutdown: every waiter and every later request is refused.
  void close();

 private:
  // Hands the freed place to the first waiter; mutex_ held. Returns the
  // grant to call once it is released (empty for a thread, notified here).
  std::function<void(bool)> hand_over_locked();
  Outcome acquire_or_queue_locked(const std::shared_ptr<Waiter>& waiter);

  const size_t limit_;
  mutable std::mutex mutex_;
  std::condition_variable room_;  // blocked threads: their Waiter was decided
  size_t held_ = 0;
  bool closed_ = false;
  std::deque<std::shared_ptr<Waiter>> queue_;
};

}  // namespace procpool::detail
