// SPDX-License-Identifier: MIT
#pragma once
// A pool whose workers are the agents' (procpool::mpi::init): the same
// calls as ProcessPool's, run on other MPI ranks.
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
#include <procpool/loop/call_encoding.hpp>
#include <procpool/loop/call_options.hpp>
#include <procpool/loop/event_loop.hpp>
#include <procpool/loop/future.hpp>
#include <procpool/loop/map_stream.hpp>
#include <procpool/loop/pool_map.hpp>
#include <procpool/loop/process_pool.hpp>
#include <procpool/loop/result.hpp>
#include <procpool/mpi/init.hpp>

namespace procpool::mpi {

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

 private:
  std::mutex mutex_;
  std::condition_variable idle_;
  size_t unsettled_ = 0;
  bool accepting_ = true;
};

// Appends the bytes of the call's SharedBytes (shared_bytes_section.hpp)
// and its options (protocol.hpp's CallTrailer) to its encoded frame (a Call
// or CallMany) and hands it to the link; fails `state` at once with
// ResourceLimitExceeded when the payload and the SharedBytes' bytes
// together exceed max_message_bytes.
void send_call(HostLink& link, procpool::detail::ByteBuffer frame, const procpool::detail::HandleList& handles,
               procpool::detail::FrameKind kind, const procpool::detail::FunctionEntry& entry,
               const CallOptions& options, std::shared_ptr<procpool::detail::StateBase> state);
// Gives a state the pool did not submit (a map's whole) the link's poller.
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
// AgentLost when the agent holding it can no longer be reached; and
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
// Thread safety: submit and call from any thread; they never block.
class MpiPool {
 public:
  // Throws procpool::Error on an agent rank, before init or after finalize,
  // and when the job has no agent (started without mpirun -np N, N >= 2).
  MpiPool();
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

  // The same with this call's options, applied by the agent's pool as a
  // ProcessPool applies them: `timeout` (from when the agent's worker may
  // have begun it; past it TaskTimeout, the worker killed and replaced)
  // `cancel_running` (what cancel() does to a call an agent holds, see
  // above) and `measure_usage` (Future::usage()); those unset take
  // MpiOptions' agent_pool.
  template <class R, class... A, class... Args>
  Future<R> submit_with(const CallOptions& options, R (*fn)(A...), Args&&... args) {
    auto encode = procpool::detail::typed_arguments<A...>(std::forward<Args>(args)...);
    uint32_t id = 0;
    std::exception_ptr failure;
    const procpool::detail::FunctionEntry* entry =
        procpool::detail::entry_of(reinterpret_cast<procpool::detail::ErasedFn>(fn), id, failure);
    if (!entry) return procpool::detail::failed_future<R>(failure);
    return enqueue<R>(id, *entry, encode, options);
  }
  template <class R, class... Args>
  Future<R> call_with(const CallOptions& options, std::string_view name, Args&&... args) {
    uint32_t id = 0;
    std::exception_ptr failure;
    const procpool::detail::FunctionEntry* entry = procpool::detail::entry_named<R, Args...>(name, id, failure);
    if (!entry) return procpool::detail::failed_future<R>(failure);
    return enqueue<R>(id, *entry, procpool::detail::named_arguments(args...), options);
  }

  // As ProcessPool::map: fn(x) for every x of a sized range, `chunksize`
  // calls to a CallMany frame (0: about 8 chunks per worker of all the
  // agents, at most 1024 calls each), each chunk sent to one agent and run
  // there back to back by one worker; results in input order. Fails with
  // the exception of the earliest chunk that failed.
  template <class R, class A, class Range, std::integral Chunk = size_t>
  Future<procpool::detail::map_result_t<R>> map(R (*fn)(A), const Range& inputs, Chunk chunksize = 0) {
    using Out = procpool::detail::map_result_t<R>;
    procpool::detail::ChunkPlan plan;
    auto parts = send_chunks<Out>(fn, inputs, plan, procpool::detail::checked_chunk_size(chunksize),
                                  procpool::detail::ManyMode::StopAtFirstThrow,
                                  [](size_t count) { return procpool::detail::chunk_state<R>(count); });
    return gather<Out, false>(std::move(parts), plan);
  }
  // As ProcessPool::map(return_exceptions, ...): each input's own outcome.
  template <class R, class A, class Range, std::integral Chunk = size_t>
  Future<std::vector<Result<R>>> map(ReturnExceptions, R (*fn)(A), const Range& inputs, Chunk chunksize = 0) {
    auto chunks = outcome_chunks(fn, inputs, procpool::detail::checked_chunk_size(chunksize));
    return gather<procpool::detail::Outcomes<R>, true>(std::move(chunks.states), chunks.plan);
  }
  // As ProcessPool::imap and imap_unordered: each input's Result as its
  // chunk is answered (in input order, or as chunks come with the input's
  // index); every chunk is sent at once.
  template <class R, class A, class Range, std::integral Chunk = size_t>
  MapStream<R> imap(R (*fn)(A), const Range& inputs, Chunk chunksize = 0) {
    return MapStream<R>(outcome_chunks(fn, inputs, procpool::detail::checked_chunk_size(chunksize)));
  }
  template <class R, class A, class Range, std::integral Chunk = size_t>
  UnorderedMapStream<R> imap_unordered(R (*fn)(A), const Range& inputs, Chunk chunksize = 0) {
    return UnorderedMapStream<R>(outcome_chunks(fn, inputs, procpool::detail::checked_chunk_size(chunksize)));
  }

  // Stops taking calls (later ones fail with PoolShutdown); with `wait`,
  // returns once every call already taken has settled. The agents stay up
  // for the next MpiPool until finalize(). Throws procpool::Error when
  // asked to wait on the link thread (in a then() callback), where it
  // would deadlock.
  void shutdown(bool wait = true);

  // The agents this pool sends calls to.
  std::vector<AgentInfo> agents() const;
  // Their workers, all together.
  size_t worker_count() const;

 private:
  template <class Out, class R, class A, class Range, class MakeState>
  std::vector<std::shared_ptr<procpool::detail::SharedState<Out>>> send_chunks(R (*fn)(A), const Range& inputs,
                                                                               procpool::detail::ChunkPlan& plan,
                                                                               size_t chunksize,
                                                                               procpool::detail::ManyMode mode,
                                                                               MakeState make_state) {
    return procpool::detail::send_map_chunks<Out>(
        fn, inputs, plan, chunksize, worker_count(), mode, std::move(make_state),
        [&](uint32_t id, const procpool::detail::FunctionEntry& entry, auto&& encode,
            std::shared_ptr<procpool::detail::SharedState<Out>> state) {
          enqueue<Out>(id, entry, encode, CallOptions{}, procpool::detail::FrameKind::CallMany, std::move(state));
        });
  }
  template <class R, class A, class Range>
  procpool::detail::MapChunks<R> outcome_chunks(R (*fn)(A), const Range& inputs, size_t chunksize) {
    procpool::detail::MapChunks<R> chunks;
    chunks.states = send_chunks<procpool::detail::Outcomes<R>>(
        fn, inputs, chunks.plan, chunksize, procpool::detail::ManyMode::EachOutcome,
        [](size_t count) { return std::make_shared<procpool::detail::OutcomeChunkState<R>>(count); });
    return chunks;
  }
  template <class Out, bool kEach>
  Future<Out> gather(std::vector<std::shared_ptr<procpool::detail::SharedState<Out>>> parts,
                     const procpool::detail::ChunkPlan& plan) {
    return Future<Out>(procpool::detail::gather_map_chunks<Out, kEach>(
        std::move(parts), plan, [this](procpool::detail::StateBase& s) { detail::watch(*link_, s); }));
  }

  // Encodes the call and hands it to the link; settles `state` (a new one
  // if null) at once if it cannot be sent.
  template <class R, class Encode>
  Future<R> enqueue(uint32_t id, const procpool::detail::FunctionEntry& entry, Encode&& encode,
                    const CallOptions& options, procpool::detail::FrameKind kind = procpool::detail::FrameKind::Call,
                    std::shared_ptr<procpool::detail::SharedState<R>> state = nullptr) {
    if (!state) state = std::make_shared<procpool::detail::SharedState<R>>();
    if (!tally_->admit())
      return procpool::detail::failed_future<R>(
          std::make_exception_ptr(PoolShutdown("the MpiPool is shut down; no new calls are accepted")),
          std::move(state));
    // Once ready, not before (before_ready): shutdown(true) returns when
    // every call it waited for is ready.
    state->on_ready_anywhere([tally = tally_] { tally->release(); });
    procpool::detail::ByteBuffer frame;
    procpool::detail::HandleList handles;
    std::exception_ptr failure;
    try {
      frame.grow(sizeof(procpool::detail::FrameHeader));
      failure = procpool::detail::encode_call(frame, frame, handles, id, entry, std::forward<Encode>(encode),
                                              max_message_bytes_);
    } catch (...) {
      failure = std::current_exception();  // out of memory
    }
    if (failure) {
      state->settle_error(std::move(failure));
      return Future<R>(std::move(state));
    }
    detail::send_call(*link_, std::move(frame), std::move(handles), kind, entry, options, state);
    return Future<R>(std::move(state));
  }

  detail::HostLink* link_;
  size_t max_message_bytes_;
  std::shared_ptr<detail::PoolTally> tally_;
};

}  // namespace procpool::mpi

// EventLoop::run_in_executor(pool, fn, args...) takes an MpiPool too.
template <>
inline constexpr bool procpool::detail::kOtherProcessPool<procpool::mpi::MpiPool> = true;
