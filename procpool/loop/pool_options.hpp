// SPDX-License-Identifier: MIT
#pragma once
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstddef>
#include <thread>

namespace procpool {

struct PoolOptions {
  // Worker processes; 0 means one per CPU.
  size_t workers = 0;
  // Bytes in each of a worker's two rings (rounded up to a power of two). A
  // call or result larger than this streams through the ring.
  size_t ring_bytes = size_t{4} << 20;
  // Largest encoded call or result, and largest SharedBytes a worker may
  // return; larger ones fail with ResourceLimitExceeded("max_message_bytes")
  // on whichever side meets them.
  size_t max_message_bytes = size_t{1} << 30;
  // How many calls one worker holds at a time: the one it runs and those
  // written into its ring behind it. More keeps workers busy under load;
  // fewer lets a long task delay fewer queued ones (a call handed ahead
  // waits for the call before it on its worker). Not a limit on a worker's
  // lifetime (Python's max_tasks_per_child): workers are replaced only when
  // they die. Was max_tasks_per_worker, a name that read as that limit.
  size_t prefetch_per_worker = 16;
  // How long a worker keeps polling for the next call before sleeping.
  std::chrono::microseconds worker_spin{50};
  // How long a thread blocked on a Future polls the response rings itself
  // before sleeping (0: sleep at once and let the reactor thread wake it).
  std::chrono::microseconds host_spin{50};
  // terminate() (and the destructor, once it stops waiting): how long busy
  // workers get after SIGTERM before SIGKILL.
  std::chrono::milliseconds shutdown_grace{2000};
  // What destroying the pool does with the calls still pending: it waits
  // for them, as shutdown(true) does, at most this long (no limit by
  // default, as Python's `with ProcessPoolExecutor()` and std::jthread wait);
  // those still pending then fail with PoolShutdown and running ones are
  // stopped, as terminate() does. 0: do not wait. On the pool's own
  // thread (in one of its callbacks), and when an exception unwinds the
  // pool's scope, the destructor does not wait: it acts as terminate().
  std::chrono::milliseconds destructor_wait = std::chrono::milliseconds::max();

  // Backpressure: at most this many calls held by the pool (queued in the
  // host or in workers' rings, not yet settled; a map chunk is one call).
  // At the bound submit/call block until a call settles (or fail with
  // PoolShutdown if the pool shuts down meanwhile), try_submit/try_call
  // fail at once with PoolFull, and co_await submit_async suspends. A
  // submit from the pool's own thread (a callback) is admitted over the
  // bound: it cannot wait for itself. 0: unbounded.
  size_t max_pending = 0;
  // How long a new worker has to set itself up and say it is ready. One
  // that does not (a fork taken while another host thread held a lock the
  // child needs blocks it for ever) is killed and replaced; its calls go
  // to the replacement. Three in a row stop the pool forking.
  std::chrono::milliseconds start_timeout{5000};
  // The default deadline of a call (CallOptions::timeout): 0, none. Counted
  // from when its worker may have begun it, not from submit. A call past it
  // fails with TaskTimeout; its worker and the worker's process group are
  // killed and the worker replaced; calls queued behind it go to others.
  std::chrono::milliseconds timeout{0};
  // Stopping a worker for a deadline or a cancel: SIGTERM first (to it and
  // its process group), SIGKILL after this grace; 0: SIGKILL at once.
  std::chrono::milliseconds stop_grace{0};
  // Future::cancel() on a call a worker has begun stops the worker (as a
  // deadline does) and fails the call with TaskCancelled. false: such a
  // call runs to its end and cancel() returns false. Per call: CallOptions.
  bool cancel_running = true;
  // Close every inherited file descriptor in workers except 0, 1 and 2 (and
  // the worker's own doorbell and SharedBytes socket). With false a worker
  // keeps the host's descriptors, its siblings' channels among them.
  bool close_fds = true;
  // Run the pool's reactor (doorbells, worker deaths, callbacks) on this
  // io_context instead of a thread of the pool's own. Someone must run it:
  // results are drained by waiting threads, but callbacks, co_await
  // resumptions and worker replacement happen only while it runs. It must
  // outlive the pool. The first workers are forked by the thread that
  // constructs the pool, replacements by a thread running the context; a
  // worker dies with the thread that forked it (PR_SET_PDEATHSIG), so these
  // threads should live as long as the pool.
  boost::asio::io_context* io_context = nullptr;
};

}  // namespace procpool
