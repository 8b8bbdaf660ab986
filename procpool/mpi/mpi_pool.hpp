// SPDX-License-Identifier: MIT
#pragma once
// A pool whose workers are the agents' (procpool::mpi::init): the same
// calls as ProcessPool's, run on other MPI ranks. The templates are in
// mpi_pool_submit.hpp, included at the end.
#include <boost/asio/system_executor.hpp>

#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>
#include <string_view>
#include <utility>
#include <vector>

#include <procpool/common/archive.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/common/frame.hpp>
#include <procpool/common/function_registry.hpp>
#include <procpool/loop/backpressure.hpp>
#include <procpool/loop/call_encoding.hpp>
#include <procpool/loop/call_options.hpp>
#include <procpool/loop/event_loop.hpp>
#include <procpool/loop/future.hpp>
#include <procpool/loop/map_stream.hpp>
#include <procpool/loop/outcome_counters.hpp>
#include <procpool/loop/pool_map.hpp>
#include <procpool/loop/pool_stats.hpp>
#include <procpool/loop/process_pool.hpp>
#include <procpool/loop/result.hpp>
#include <procpool/mpi/init.hpp>

namespace procpool::mpi {

// One MpiPool's own options (the agents' pools take MpiOptions, at init).
struct MpiPoolOptions {
  // At most this many calls of this pool held (on the host or at agents)
  // and not settled: submit blocks, try_submit fails with PoolFull,
  // submit_async and EventLoop::run_in_executor wait without blocking a
  // thread, as ProcessPool's max_pending. 0: no bound.
  size_t max_pending = 0;
};

namespace detail {
class HostLink;

// The calls of one MpiPool not yet settled, and whether it takes more:
// what shutdown waits on. Shared with the calls' states, which give their
// place back once they are ready.
class PoolTally {
 public:
  bool admit();
  void release();
  void close();
  void wait_idle();
  size_t unsettled();

 private:
  std::mutex mutex_;
  std::condition_variable idle_;
  size_t unsettled_ = 0;
  bool accepting_ = true;
};

// What an MpiPool's calls need, shared with them and with the submits
// still waiting for room (submit_async, run_in_executor), which may
// outlive the pool: they find it closed.
struct PoolCore {
  HostLink* link = nullptr;  // process-wide, never freed (init.cpp)
  size_t max_message_bytes = 0;
  PoolTally tally;
  std::shared_ptr<procpool::detail::Backpressure> room;  // null: no max_pending
  procpool::detail::OutcomeCounters counters;
};

// Takes a place for the call behind `state` under max_pending, as
// `admission` says, and ties its settling to the pool's books (the tally,
// the counters); false (the state failed with PoolShutdown or PoolFull)
// when it may not be sent.
bool admit(const std::shared_ptr<PoolCore>& core, procpool::detail::StateBase& state, const std::string& function,
           procpool::detail::Admission admission);
// Counts a call the pool sends (stats()): submitted now, its outcome once
// it settles, before it is ready.
void count(const std::shared_ptr<PoolCore>& core, procpool::detail::StateBase& state);
// Appends the bytes of the call's SharedBytes (shared_bytes_section.hpp)
// and its options (protocol.hpp's CallTrailer) to its encoded frame (a Call
// or CallMany) and hands it to the link; fails `state` at once with
// ResourceLimitExceeded when the payload and the SharedBytes' bytes
// together exceed max_message_bytes.
void send_call(HostLink& link, procpool::detail::ByteBuffer frame, const procpool::detail::HandleList& handles,
               procpool::detail::FrameKind kind, const procpool::detail::FunctionEntry& entry,
               const CallOptions& options, std::shared_ptr<procpool::detail::StateBase> state);
// Gives a state the pool did not submit (a map's whole, a call waiting for
// room) the link's poller.
void watch(HostLink& link, procpool::detail::StateBase& state);
}  // namespace detail

// Runs registered functions on the agents of an MPI job: a ProcessPool's
// calling interface, with the agents as its workers. Made on rank 0 after
// procpool::mpi::init. Each call goes to the agent with the fewest calls
// per worker that has room (MpiOptions::in_flight_per_agent), else waits
// on the host in FIFO order; the agent runs it on its local ProcessPool.
//
// Every Future settles exactly once, as a ProcessPool's: with the result;
// with the exception the task threw (same type, as locally); with
// RemoteWorkerCrashed (a WorkerCrashed naming the rank and host) when the
// agent's worker died running it, the agent and its other calls unharmed;
// TaskTimeout, PoolShutdown, PoolBroken from the agent's pool as their own
// types; UnknownFunction and SerializationError at once for a bad call;
// AgentLost when the agent holding it can no longer be reached (an MPI
// error, a malformed reply, or silence for MpiOptions::agent_timeout); and
// PoolShutdown for a call submitted after shutdown(). then() callbacks run
// on the host's link thread (or on the thread whose cancel() settles it).
//
// cancel() keeps ProcessPool's word: true exactly when the future fails
// with TaskCancelled at once, false when the call's own outcome settles
// it. A call still queued on the host is withdrawn (true; it never runs).
// A call an agent holds, with cancel_running (the default), is settled
// at once (true) and the agent is sent a Cancel: its pool withdraws the
// call if no worker has begun it, else stops the worker as a local
// cancel() does (killed with its process group, replaced); whatever the
// agent answers then is dropped. Without cancel_running, false: the host
// cannot know whether the agent has begun it, so it runs to its end. When
// the answer races the cancel, the first to settle the future wins: an
// answer already taken by the host gives false; an answer still on its
// way is dropped (true), though that call did run to its end, as a local
// worker stopped after its task returned but before its answer was read.
// SharedBytes arguments and results cross as their bytes: the agent (or,
// for a result, the host) makes a SharedBytes of its own from them; the
// payload and those bytes together count against max_message_bytes.
//
// Thread safety: every member from any thread. submit and call never
// block, except at MpiPoolOptions::max_pending (try_submit fails at once
// with PoolFull there, submit_async suspends a coroutine).
class MpiPool {
 public:
  // Throws procpool::Error on an agent rank, before init or after finalize,
  // and when the job has no agent (started without mpirun -np N, N >= 2).
  explicit MpiPool(MpiPoolOptions options = {});
  // shutdown(true).
  ~MpiPool();
  MpiPool(const MpiPool&) = delete;
  MpiPool& operator=(const MpiPool&) = delete;

  // As ProcessPool::submit: typed, checked at compile time.
  template <class R, class... A, class... Args>
  Future<R> submit(R (*fn)(A...), Args&&... args) {
    return submit_with(CallOptions{}, fn, std::forward<Args>(args)...);
  }
  // As ProcessPool::call: by name, R and the decayed argument types those
  // registered.
  template <class R, class... Args>
  Future<R> call(std::string_view name, Args&&... args) {
    return call_with<R>(CallOptions{}, name, std::forward<Args>(args)...);
  }
  // As ProcessPool's: a lambda, functor or member function in fn's place,
  // or a name without R, is refused at compile time saying what to pass.
  template <int&... kNoExplicitArguments, class F, class... Args>
  requires(!procpool::detail::kFunctionPointer<F>) procpool::detail::RefusedCallable<F> submit(F&&, Args&&...) {
    return {};
  }
  template <int&... kNoExplicitArguments, class... Args>
  procpool::detail::NamedCallWithoutResultType<Args...> call(std::string_view, Args&&...) {
    return {};
  }

  // The same with this call's options, applied by the agent's pool as a
  // ProcessPool applies them: `timeout` (from when the agent's worker may
  // have begun it; past it TaskTimeout, the worker killed and replaced),
  // `cancel_running` (what cancel() does to a call an agent holds, see
  // above) and `measure_usage` (Future::usage()); those unset take
  // MpiOptions' agent_pool.
  template <class R, class... A, class... Args>
  Future<R> submit_with(const CallOptions& options, R (*fn)(A...), Args&&... args) {
    return submit_on(core_, procpool::detail::Admission::Wait, options, nullptr, fn, std::forward<Args>(args)...);
  }
  template <class R, class... Args>
  Future<R> call_with(const CallOptions& options, std::string_view name, Args&&... args) {
    return call_on<R>(core_, procpool::detail::Admission::Wait, options, nullptr, name, std::forward<Args>(args)...);
  }
  template <int&... kNoExplicitArguments, class F, class... Args>
  requires(!procpool::detail::kFunctionPointer<F>) procpool::detail::RefusedCallable<F> submit_with(const CallOptions&,
                                                                                                    F&&, Args&&...) {
    return {};
  }
  template <int&... kNoExplicitArguments, class... Args>
  procpool::detail::NamedCallWithoutResultType<Args...> call_with(const CallOptions&, std::string_view, Args&&...) {
    return {};
  }

  // As ProcessPool's: at max_pending, the Future has already failed with
  // PoolFull (a ResourceLimitExceeded naming "max_pending"); never blocks.
  template <class R, class... A, class... Args>
  Future<R> try_submit(R (*fn)(A...), Args&&... args) {
    return submit_on(core_, procpool::detail::Admission::Try, CallOptions{}, nullptr, fn, std::forward<Args>(args)...);
  }
  template <class R, class... Args>
  Future<R> try_call(std::string_view name, Args&&... args) {
    return call_on<R>(core_, procpool::detail::Admission::Try, CallOptions{}, nullptr, name,
                      std::forward<Args>(args)...);
  }
  template <int&... kNoExplicitArguments, class F, class... Args>
  requires(!procpool::detail::kFunctionPointer<F>) procpool::detail::RefusedCallable<F> try_submit(F&&, Args&&...) {
    return {};
  }
  template <int&... kNoExplicitArguments, class... Args>
  procpool::detail::NamedCallWithoutResultType<Args...> try_call(std::string_view, Args&&...) {
    return {};
  }
  // As ProcessPool's: in a procpool::Task, `Future<R> f = co_await
  // pool.submit_async(fn, args...);` suspends the task (never the loop's
  // thread) until the pool has room, then submits. A cancellation of the
  // task while it waits throws TaskCancelled and submits nothing. The
  // arguments are copied (decayed) into the awaitable.
  template <class R, class... A, class... Args>
  auto submit_async(R (*fn)(A...), Args&&... args);
  // EventLoop::run_in_executor's form: never blocks; at max_pending the
  // call waits on the host for a place (its Future is handed out at once
  // and cannot be cancelled until then) and is sent when one frees.
  template <class R, class... A, class... Args>
  Future<R> submit_when_room(const CallOptions& options, R (*fn)(A...), Args&&... args);
  template <class R, class... Args>
  Future<R> call_when_room(const CallOptions& options, std::string_view name, Args&&... args);

  // The Asio asynchronous form of submit, as ProcessPool's:
  // pool.async_call(fn, args..., token). Completion signature
  // void(std::exception_ptr, R), or void(std::exception_ptr) when R is
  // void. The handler runs through its associated executor, by default
  // get_executor() (Asio's system executor: its own threads; the link
  // thread is no io_context), never inline. No per-operation cancellation
  // (Boost 1.74). Thread safety: as submit.
  template <class Fn, class... ArgsAndToken>
  auto async_call(Fn fn, ArgsAndToken&&... args_and_token);
  template <class Fn, class... ArgsAndToken>
  auto async_call_with(const CallOptions& options, Fn fn, ArgsAndToken&&... args_and_token);
  using executor_type = boost::asio::system_executor;
  executor_type get_executor() const noexcept { return {}; }

  // As ProcessPool::map: fn(x) for every x of a sized range, `chunksize`
  // calls to a CallMany frame (0: about 8 chunks per worker of all the
  // agents, at most 1024 calls each), each chunk sent to one agent and run
  // there back to back by one worker; results in input order. Fails with
  // the exception of the earliest chunk that failed. At max_pending each
  // chunk takes a place; one that finds none waits for it with a copy of
  // its inputs (the map never blocks).
  template <class R, class A, class Range, std::integral Chunk = size_t>
  Future<procpool::detail::map_result_t<R>> map(R (*fn)(A), const Range& inputs, Chunk chunksize = 0);
  // As ProcessPool::map(return_exceptions, ...): each input's own outcome.
  template <class R, class A, class Range, std::integral Chunk = size_t>
  Future<std::vector<Result<R>>> map(ReturnExceptions, R (*fn)(A), const Range& inputs, Chunk chunksize = 0);
  // As ProcessPool::imap and imap_unordered: each input's Result as its
  // chunk is answered (in input order, or as chunks come with the input's
  // index); every chunk is sent at once.
  template <class R, class A, class Range, std::integral Chunk = size_t>
  MapStream<R> imap(R (*fn)(A), const Range& inputs, Chunk chunksize = 0);
  template <class R, class A, class Range, std::integral Chunk = size_t>
  UnorderedMapStream<R> imap_unordered(R (*fn)(A), const Range& inputs, Chunk chunksize = 0);
  template <int&... kNoExplicitArguments, class F, class Range, class... Chunk>
  requires(!procpool::detail::kFunctionPointer<F> &&
           !std::is_same_v<std::decay_t<F>, ReturnExceptions>) procpool::detail::RefusedCallable<F> map(F&&,
                                                                                                        const Range&,
                                                                                                        Chunk...) {
    return {};
  }
  template <int&... kNoExplicitArguments, class F, class Range, class... Chunk>
  requires(!procpool::detail::kFunctionPointer<F>) procpool::detail::RefusedCallable<F> imap(F&&, const Range&,
                                                                                             Chunk...) {
    return {};
  }
  template <int&... kNoExplicitArguments, class F, class Range, class... Chunk>
  requires(!procpool::detail::kFunctionPointer<F>) procpool::detail::RefusedCallable<F> imap_unordered(F&&,
                                                                                                       const Range&,
                                                                                                       Chunk...) {
    return {};
  }

  // Stops taking calls (later ones fail with PoolShutdown, as do submits
  // waiting for room); with `wait`, returns once every call already taken
  // has settled. The agents stay up for the next MpiPool until finalize().
  // Throws procpool::Error when asked to wait on the link thread (in a
  // then() callback), where it would deadlock.
  void shutdown(bool wait = true);

  // What this pool has done, as ProcessPool::stats(): calls `submitted`
  // and how each settled (succeeded, raised, crashed, timed_out,
  // cancelled, protocol_errors, limit_exceeded, shut_down, other_errors;
  // a map counts one per chunk); `queued` (this pool's calls not yet
  // settled that no agent holds: on the host, or waiting for room) and
  // `in_flight` (sent to agents, not answered; all MpiPools together: the
  // agents are shared). The agents' pools keep their own workers' figures
  // (deaths, respawns, spares, per-worker): not reported here, those are
  // 0 and `workers` is empty.
  PoolStats stats() const;

  // The agents this pool sends calls to.
  std::vector<AgentInfo> agents() const;
  // Their workers, all together.
  size_t worker_count() const;

 private:
  template <class R, class... A, class... Args>
  auto deferred_submit(const CallOptions& options, R (*fn)(A...), Args&&... args) const;
  template <class R, class... Args>
  auto deferred_call(const CallOptions& options, std::string_view name, Args&&... args) const;
  template <class R, class... A, class Token, class... Args>
  auto async_call_impl(const CallOptions& options, R (*fn)(A...), Token&& token, Args&&... args);
  template <class R, class... A, class... Args>
  static Future<R> submit_on(const std::shared_ptr<detail::PoolCore>& core, procpool::detail::Admission admission,
                             const CallOptions& options,
                             std::type_identity_t<std::shared_ptr<procpool::detail::SharedState<R>>> state,
                             R (*fn)(A...), Args&&... args);
  template <class R, class... Args>
  static Future<R> call_on(const std::shared_ptr<detail::PoolCore>& core, procpool::detail::Admission admission,
                           const CallOptions& options, std::shared_ptr<procpool::detail::SharedState<R>> state,
                           std::string_view name, Args&&... args);
  // Encodes the call and hands it to the link; settles `state` (a new one
  // if null) at once if it cannot be sent.
  template <class R, class Encode>
  static Future<R> enqueue(const std::shared_ptr<detail::PoolCore>& core, procpool::detail::Admission admission,
                           uint32_t id, const procpool::detail::FunctionEntry& entry, Encode&& encode,
                           const CallOptions& options, procpool::detail::FrameKind kind,
                           std::shared_ptr<procpool::detail::SharedState<R>> state);

  template <class Out, class R, class A, class Range, class MakeState>
  std::vector<std::shared_ptr<procpool::detail::SharedState<Out>>> send_chunks(R (*fn)(A), const Range& inputs,
                                                                               procpool::detail::ChunkPlan& plan,
                                                                               size_t chunksize,
                                                                               procpool::detail::ManyMode mode,
                                                                               MakeState make_state);
  template <class R, class A, class Range>
  procpool::detail::MapChunks<R> outcome_chunks(R (*fn)(A), const Range& inputs, size_t chunksize);
  template <class Out, bool kEach>
  Future<Out> gather(std::vector<std::shared_ptr<procpool::detail::SharedState<Out>>> parts,
                     const procpool::detail::ChunkPlan& plan);

  std::shared_ptr<detail::PoolCore> core_;
};

}  // namespace procpool::mpi

// EventLoop::run_in_executor(pool, fn, args...) takes an MpiPool too.
template <>
inline constexpr bool procpool::detail::kOtherProcessPool<procpool::mpi::MpiPool> = true;

#include <procpool/mpi/mpi_pool_submit.hpp>
