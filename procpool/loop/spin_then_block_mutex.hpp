// SPDX-License-Identifier: MIT
#pragma once
// The mutex of the pool's hot paths (dispatch and drain). Their critical
// sections last tens to hundreds of nanoseconds, and the threads that meet
// in them (a submitting thread, a polling waiter, the reactor) usually run
// on different CPUs: a thread that finds the lock held does better to spin
// briefly than to sleep in the kernel and be woken, which costs two system
// calls and two context switches, microseconds each. glibc's adaptive mutex
// spins a bounded, self-tuned number of times before it sleeps, so a holder
// that was preempted still costs only a sleep. Measured with 1,000,000
// separate calls on 2 workers (2 cores): futex calls went from ~130,000 to
// ~17,000 and the run's system time halved.
//
// Where glibc's extension is missing, it is a plain mutex.
#include <pthread.h>

namespace procpool::detail {

class SpinThenBlockMutex {
 public:
  SpinThenBlockMutex() noexcept = default;
  ~SpinThenBlockMutex() { ::pthread_mutex_destroy(&mutex_); }
  SpinThenBlockMutex(const SpinThenBlockMutex&) = delete;
  SpinThenBlockMutex& operator=(const SpinThenBlockMutex&) = delete;

  // Lockable: errors (EDEADLK, EINVAL) cannot happen with this type and
  // correct use, as with std::mutex in practice.
  void lock() noexcept { ::pthread_mutex_lock(&mutex_); }
  bool try_lock() noexcept { return ::pthread_mutex_trylock(&mutex_) == 0; }
  void unlock() noexcept { ::pthread_mutex_unlock(&mutex_); }

 private:
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
  pthread_mutex_t mutex_ = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;
#else
  pthread_mutex_t mutex_ = PTHREAD_MUTEX_INITIALIZER;
#endif
};

}  // namespace procpool::detail
