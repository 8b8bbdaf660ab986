// SPDX-License-Identifier: MIT
#pragma once
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include <procpool/common/initializer.hpp>
#include <procpool/common/resource_limits.hpp>
#include <procpool/common/worker_output.hpp>
#include <procpool/sandbox/namespaces.hpp>
#include <procpool/sandbox/sandbox.hpp>
#include <procpool/worker/start_method.hpp>

namespace procpool {

// PoolOptions::crash_loop: a function whose calls killed `count` workers in
// a row (no call of it answered between), the first of them at most
// `window` before the last, fails its further calls at once with
// CrashLoopDetected for `cooldown`; then its calls run again. count 0: off.
struct CrashLoop {
  unsigned count = 0;
  std::chrono::milliseconds window{10000};
  std::chrono::milliseconds cooldown{30000};
};

struct PoolOptions {
  // Worker processes; 0 means one per CPU.
  size_t workers = 0;
  // How workers come to exist (start_method.hpp; README.md, "Start
  // methods"): a fork of the host, a fork of the zygote procpool::init()
  // made, or an exec. Unset: procpool::default_start_method() if one was
  // set, else forkserver for a pool with a sandbox (a sandboxed worker
  // should not hold a copy of the host's memory) and fork for any other.
  // forkserver and spawn need procpool::init(argc, argv) at the top of
  // main; without it the pool is refused with procpool::Error.
  std::optional<StartMethod> start_method{};
  // With StartMethod::spawn: the program to exec as a worker (it must
  // register the same functions, in the same order, and call
  // procpool::init(argc, argv) first thing in main). Empty: this program.
  std::string worker_program{};
  // Bytes in each of a worker's two rings (rounded up to a power of two, at
  // least 4096; over 1 GiB the pool is refused with procpool::Error). A
  // call or result larger than this streams through the ring.
  size_t ring_bytes = size_t{4} << 20;
  // Largest encoded call or result, and largest SharedBytes a worker may
  // return; larger ones fail with ResourceLimitExceeded("max_message_bytes")
  // on whichever side meets them.
  size_t max_message_bytes = size_t{1} << 30;
  // How many calls one worker holds at a time: the one it runs and those
  // written into its ring behind it. More keeps workers busy under load;
  // fewer lets a long task delay fewer queued ones (a call handed ahead
  // waits for the call before it on its worker, unless work stealing moves
  // it to a worker that fell idle). Not a limit on a worker's lifetime:
  // that is max_tasks_per_child (Python's). Was max_tasks_per_worker, a
  // name that read as that limit.
  // Unset: 16, and more while calls wait on the host and the worker's
  // recent calls are short: as many as it runs in about 100 µs at its
  // recent pace (kept by the worker, ControlBlock::call_ns), up to 256. A
  // burst of tiny calls then costs a wake-up per hundred of them instead of
  // per 16. Set: exactly that many, whatever the calls' pace (0 is refused
  // with procpool::Error).
  std::optional<size_t> prefetch_per_worker{};
  // How long a worker keeps polling for the next call before sleeping.
  // A worker polling on a contended CPU that its caller's thread also runs
  // on moves itself to another CPU of its set (at most every 100 ms), or
  // else sleeps with that CPU out of its set, so that its wake-up does not
  // preempt the caller; either way the set it had (the initializer's if it
  // chose one) is back before it runs a call. 0 turns polling off, and with
  // it both.
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
  // to the replacement. max_failed_starts in a row break the pool. Zero or
  // less is refused (procpool::Error).
  std::chrono::milliseconds start_timeout{5000};
  // The default deadline of a call (CallOptions::timeout): 0 (or less),
  // none. Counted from when its worker may have begun it, not from submit.
  // A call past it fails with TaskTimeout; its worker and the worker's
  // process group are killed and the worker replaced; calls queued behind
  // it go to others.
  std::chrono::milliseconds timeout{0};
  // Stopping a worker for a deadline or a cancel: SIGTERM first (to it and
  // its process group), SIGKILL after this grace; 0: SIGKILL at once.
  std::chrono::milliseconds stop_grace{0};
  // Future::cancel() on a call a worker has begun stops the worker (as a
  // deadline does) and fails the call with TaskCancelled. false: such a
  // call runs to its end and cancel() returns false. Per call: CallOptions.
  bool cancel_running = true;
  // The default of CallOptions::measure_usage: Future::usage() of every call.
  bool measure_usage = false;
  // Close every inherited file descriptor in workers except 0, 1 and 2 (and
  // the worker's own doorbell and SharedBytes socket). With false a worker
  // keeps the host's descriptors, its siblings' channels among them.
  bool close_fds = true;
  // What becomes of what workers write to stdout and stderr: the host's
  // own (inherit), /dev/null (discard), or pipes the pool reads (capture):
  // each whole line goes to on_output, never cut mid-line nor mixed with
  // another's, named with the worker's pid and the function whose call
  // wrote it; a captured stdout is line-buffered, and what a worker wrote
  // before it crashed is still read, its last lines carried by its
  // WorkerCrashed (last_output()).
  WorkerOutput worker_output = WorkerOutput::inherit;
  // With capture: called with each line on the pool's own thread (keep it
  // short). Unset: the line goes to the host's stdout or stderr, as the
  // worker wrote it, prefixed "[worker <pid> <function>] ".
  std::function<void(const OutputLine&)> on_output{};
  // Run the pool's reactor (doorbells, worker deaths, callbacks) on this
  // io_context instead of a thread of the pool's own. Someone must run it:
  // results are drained by waiting threads, but callbacks, co_await
  // resumptions and worker replacement happen only while it runs. It must
  // outlive the pool. The pool keeps work on it while it lives (its waits
  // on doorbells and deaths): io_context::run() does not return until then. The first workers are forked by the thread
  // that constructs the pool (replacements and spares by a thread of the pool's own); a worker dies with the thread
  // that forked it (PR_SET_PDEATHSIG), so that thread should live as long as the pool.
  boost::asio::io_context* io_context = nullptr;

  // ---- Workers' lives (DESIGN.md, "Workers' lives") ----
  // Python's max_tasks_per_child: a worker exits after this many calls (a
  // map chunk is one call, as a work item is in Python) once it has
  // published the last one's answer, and is replaced at once; no call
  // waits for it, fails or runs twice. 0: no limit.
  size_t max_tasks_per_child = 0;
  // Resident memory in bytes: a worker whose RSS is above it after a call
  // exits once that call's answer is published, and is replaced; calls
  // queued behind it go to the replacement. 0: off (no cost on a call).
  size_t max_worker_memory = 0;
  // Run in each new worker before it takes calls, within start_timeout
  // (procpool::initializer(fn, args...)). One that throws, crashes or
  // overruns start_timeout is a failed start.
  Initializer initializer{};
  // Workers that fail to start in a row (set-up, initializer, start_timeout)
  // before the pool is broken: every pending and later call then fails
  // with PoolBroken, which names the cause, and no worker is forked again.
  // A worker that starts resets the count.
  unsigned max_failed_starts = 3;
  // Workers forked ahead and kept idle (their initializer run), so that a
  // worker that dies, is stopped for a deadline or a cancel, or retires
  // (max_tasks_per_child, max_worker_memory) is replaced at once rather
  // than after a fork (a millisecond or more, longer in a large host). A
  // pool forks them only once it has had to replace a worker: a pool
  // whose workers never go has none. They are not counted in `workers`
  // and take no calls until they take a slot. 0: none (a replacement is
  // forked when needed, by a thread of the pool's own, out of the way of
  // the workers still serving).
  size_t spare_workers = 1;
  // setrlimit limits applied in each worker (core dumps off by default).
  ResourceLimits limits{};
  // The crash-loop breaker (off by default: a pool that is meant to run
  // crashing calls, as the test suites do, would have them refused).
  CrashLoop crash_loop{};
  // What workers may do once set up (README.md, "Sandbox"): off by
  // default; Sandbox::compute_only(), Sandbox::read_only_files({...}), or
  // either with allow()/deny(). Checked when the pool is made (an unknown
  // syscall name, no Landlock for read_only_files: procpool::Error);
  // applied in each worker after its initializer, before its first call.
  Sandbox sandbox{};
  // Namespaces of each worker's own (namespaces.hpp; README.md, "Sandbox"):
  // {.network = true} leaves it no network. Entered after the initializer,
  // before the sandbox; the pool is refused (procpool::Error) where the
  // kernel refuses one. None by default.
  Namespaces namespaces{};
};

}  // namespace procpool
