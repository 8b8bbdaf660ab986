// SPDX-License-Identifier: MIT
#pragma once
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <concepts>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <procpool/common/archive.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/common/frame.hpp>
#include <procpool/common/function_registry.hpp>
#include <procpool/common/shared_bytes.hpp>
#include <procpool/loop/backpressure.hpp>
#include <procpool/loop/call_encoding.hpp>
#include <procpool/loop/call_options.hpp>
#include <procpool/loop/future.hpp>
#include <procpool/loop/map_stream.hpp>
#include <procpool/loop/pool_map.hpp>
#include <procpool/loop/pool_options.hpp>
#include <procpool/loop/pool_stats.hpp>
#include <procpool/loop/room_waiting.hpp>
#include <procpool/loop/shutdown_options.hpp>

namespace procpool {

class EventLoop;
class ProcessPool;

namespace detail {
class PoolCore;
// Queues a call someone else encoded (call_encoding.hpp: `frame` holds the
// room for its header, then its payload; `handles` the SharedBytes its
// payload names by index) on `pool`, settling `state` with the worker's
// answer as any call's. For relays of calls from elsewhere (an MPI agent's,
// procpool/mpi/): the caller has checked the function id.
void submit_encoded_call(ProcessPool& pool, ByteBuffer frame, HandleList handles, FrameKind kind, uint32_t function_id,
                         std::shared_ptr<StateBase> state, const CallOptions& options = {});
template <class R, class Submit>
class SubmitAwaitable;

// Where a call is encoded: its frame. A call that outgrows a ring's worth
// takes over the buffer of an earlier large call if the pool kept one that
// fits it and is at most four times its size (PoolCore::lend_spare_frame):
// fresh pages cost more than the copy into them.
class FrameSink final : public ByteSink {
 public:
  FrameSink(ByteBuffer& frame, PoolCore& core) noexcept : frame_(frame), core_(core) {}
  void write(const void* data, size_t size) override {
    if (size > frame_.capacity() - frame_.size()) make_room(frame_.size() + size);
    frame_.append(data, size);
  }

 private:
  void make_room(size_t need);
  ByteBuffer& frame_;
  PoolCore& core_;
};
}  // namespace detail

// A pool of forked worker processes that run registered functions.
//
// submit() and call() never block on a worker and are safe from any thread;
// with PoolOptions::max_pending they block while the pool holds that many
// calls (try_submit fails at once, submit_async suspends a coroutine).
// Every Future they return settles exactly once: with the result, with the
// exception the task threw (same type for standard and registered types,
// its nearest standard base mixed with RemoteOrigin for an unregistered
// type derived from one, RemoteError otherwise; nested chains kept), or with the pool's error: UnknownFunction and
// SerializationError (at once, for a bad call), WorkerCrashed (the worker
// died running it; the pool forks a replacement and other calls go on),
// ProtocolError (the worker wrote garbage and was killed), TaskTimeout (it
// ran past its deadline; its worker was stopped and replaced),
// TaskCancelled (cancel() withdrew it, or stopped the worker running it),
// ResourceLimitExceeded (a call or result over max_message_bytes; PoolFull,
// one of them, from try_submit at max_pending), PoolShutdown (the pool
// stopped first).
class ProcessPool {
 public:
  // Forks the workers; throws procpool::Error when none can be started.
  explicit ProcessPool(PoolOptions options = {});
  // Waits for the calls still pending, as shutdown(true) does, for at most
  // PoolOptions::destructor_wait (no limit by default); then acts as
  // terminate(). It acts as terminate() at once in one of the
  // pool's own callbacks (it cannot wait there), and when an exception
  // unwinds the pool's scope (a failure, a cancelled task, Ctrl-C in the
  // event loop): nobody will read those results.
  // Never hangs on a stuck worker once it stops waiting: SIGKILL ends one
  // that is SIGSTOPped or ignores SIGTERM after shutdown_grace.
  ~ProcessPool();
  ProcessPool(const ProcessPool&) = delete;
  ProcessPool& operator=(const ProcessPool&) = delete;

  // Calls a registered function; arguments are checked against its
  // signature at compile time and converted to its parameter types.
  template <class R, class... A, class... Args>
  Future<R> submit(R (*fn)(A...), Args&&... args);
  // Anything else in fn's place (a lambda, a functor, a member function) is
  // refused at compile time with a message saying what to pass instead; so
  // are submit_with, try_submit and the map family.
  template <int&... kNoExplicitArguments, class F, class... Args>
  requires(!detail::kFunctionPointer<F>) detail::RefusedCallable<F> submit(F&&, Args&&...) { return {}; }

  // Calls a registered function by name. The argument types (decayed) and R
  // must be exactly the registered ones, else SerializationError names both
  // signatures.
  template <class R, class... Args>
  Future<R> call(std::string_view name, Args&&... args);
  // Without R, refused at compile time saying so; so are call_with and
  // try_call.
  template <int&... kNoExplicitArguments, class... Args>
  detail::NamedCallWithoutResultType<Args...> call(std::string_view, Args&&...) {
    return {};
  }

  // The same with options for this call: a deadline (`{.timeout = 200ms}`,
  // counted from when its worker may have begun it; past it the call fails
  // with TaskTimeout and the worker, with its process group, is killed and
  // replaced) and whether cancel() stops it once running
  // (`cancel_running`). Unset options take the pool's (PoolOptions).
  template <class R, class... A, class... Args>
  Future<R> submit_with(const CallOptions& options, R (*fn)(A...), Args&&... args);
  template <int&... kNoExplicitArguments, class F, class... Args>
  requires(!detail::kFunctionPointer<F>) detail::RefusedCallable<F> submit_with(const CallOptions&, F&&, Args&&...) {
    return {};
  }
  template <class R, class... Args>
  Future<R> call_with(const CallOptions& options, std::string_view name, Args&&... args);
  template <int&... kNoExplicitArguments, class... Args>
  detail::NamedCallWithoutResultType<Args...> call_with(const CallOptions&, std::string_view, Args&&...) {
    return {};
  }

  // Backpressure (PoolOptions::max_pending). try_submit and try_call never
  // block: at the bound the future they return has already failed with
  // PoolFull (a ResourceLimitExceeded naming "max_pending"). Without a
  // bound they are submit and call.
  template <class R, class... A, class... Args>
  Future<R> try_submit(R (*fn)(A...), Args&&... args);
  template <int&... kNoExplicitArguments, class F, class... Args>
  requires(!detail::kFunctionPointer<F>) detail::RefusedCallable<F> try_submit(F&&, Args&&...) { return {}; }
  template <class R, class... Args>
  Future<R> try_call(std::string_view name, Args&&... args);
  template <int&... kNoExplicitArguments, class... Args>
  detail::NamedCallWithoutResultType<Args...> try_call(std::string_view, Args&&...) {
    return {};
  }
  // In a procpool::Task: `Future<R> f = co_await pool.submit_async(fn, args...);`
  // suspends the task (never the loop's thread) until the pool has room,
  // then submits and gives the call's Future (co_await that for the
  // result). Resumed on the loop's thread, FIFO with blocked submitters. A
  // cancellation of the task while it waits throws TaskCancelled and
  // submits nothing. After shutdown the Future has failed with
  // PoolShutdown. The arguments are copied (decayed) into the awaitable.
  // Thread safety: as submit; the awaitable belongs to its task.
  template <class R, class... A, class... Args>
  auto submit_async(R (*fn)(A...), Args&&... args);

  // Calls fn(x) for every x of `inputs` (a sized range), like Python's
  // Executor.map with a chunksize: `chunksize` calls travel in one frame and
  // run back to back in one worker (0: the pool picks, about 8 chunks per
  // worker and at most 1024 calls each; never more than 4096). `inputs` is
  // read once, front to back, while map encodes the chunks. The future holds the results in
  // input order (nothing for a void fn). If a call throws, the future fails
  // with that exception (from the earliest chunk that failed), and the calls
  // after it in its chunk do not run; other chunks do. A crash fails the map
  // with WorkerCrashed; cancel() cancels every chunk (withdrawn, or its worker
  // stopped if running) and fails the map with TaskCancelled. PoolOptions::timeout
  // applies to each chunk (one call): a chunk past it fails the map with
  // TaskTimeout. A negative chunksize throws std::invalid_argument (Python's
  // map raises ValueError). Never blocks: under max_pending each chunk is
  // one call, and those that find no room wait for it in the pool's queue
  // of waiters, holding copies of their inputs.
  template <class R, class A, class Range, std::integral Chunk = size_t>
  Future<detail::map_result_t<R>> map(R (*fn)(A), const Range& inputs, Chunk chunksize = 0);
  template <int&... kNoExplicitArguments, class F, class Range, class... Chunk>
  requires(!detail::kFunctionPointer<F> &&
           !std::is_same_v<std::decay_t<F>, ReturnExceptions>) detail::RefusedCallable<F> map(F&&, const Range&,
                                                                                              Chunk...) {
    return {};
  }

  // The same, with each call's own outcome: a Result per input, in input
  // order, holding its value or the exception it threw (as gather with
  // return_exceptions); a call that throws does not stop the others of its
  // chunk. A crash fails the calls of the chunk that was running with
  // WorkerCrashed, those that had already finished too (their results
  // were in the chunk's answer, which is lost); other chunks are unharmed.
  template <class R, class A, class Range, std::integral Chunk = size_t>
  Future<std::vector<Result<R>>> map(ReturnExceptions, R (*fn)(A), const Range& inputs, Chunk chunksize = 0);

  // Lazy forms of map(return_exceptions, ...), as Python's Pool.imap and
  // imap_unordered: a stream to iterate (map_stream.hpp) that gives each
  // input's Result once its chunk has been answered: imap in input order
  // (an element waits for those before it), imap_unordered as chunks are
  // answered, with the input's index. Chunks as in map; the calls are all
  // submitted here, not as the stream is read (under max_pending, those
  // that find no room wait for it as map's do: the stream is read while
  // they wait). The stream's cancel() cancels the unread chunks; a stream
  // destroyed before its end withdraws those it can without stopping a
  // worker.
  template <class R, class A, class Range, std::integral Chunk = size_t>
  MapStream<R> imap(R (*fn)(A), const Range& inputs, Chunk chunksize = 0);
  template <class R, class A, class Range, std::integral Chunk = size_t>
  UnorderedMapStream<R> imap_unordered(R (*fn)(A), const Range& inputs, Chunk chunksize = 0);
  template <int&... kNoExplicitArguments, class F, class Range, class... Chunk>
  requires(!detail::kFunctionPointer<F>) detail::RefusedCallable<F> imap(F&&, const Range&, Chunk...) { return {}; }
  template <int&... kNoExplicitArguments, class F, class Range, class... Chunk>
  requires(!detail::kFunctionPointer<F>) detail::RefusedCallable<F> imap_unordered(F&&, const Range&, Chunk...) {
    return {};
  }

  // The Asio asynchronous form of submit: pool.async_call(fn, args..., token).
  //
  // Completion signature: void(std::exception_ptr, R), or
  // void(std::exception_ptr) when R is void; the exception_ptr carries what
  // get() would throw. Works with any completion token (a callback,
  // use_future, use_awaitable, ...). The handler runs through its associated
  // executor, by default the pool's own (get_executor()), never inline. An
  // outstanding call keeps the handler's executor busy (a work guard), so
  // the io_context running it does not return early. Per-operation
  // cancellation slots need Boost 1.77; with Boost 1.74 there are none.
  // Thread safety: as submit.
  template <class Fn, class... ArgsAndToken>
  auto async_call(Fn fn, ArgsAndToken&&... args_and_token);
  // The same with this call's options (as submit_with).
  template <class Fn, class... ArgsAndToken>
  auto async_call_with(const CallOptions& options, Fn fn, ArgsAndToken&&... args_and_token);

  using executor_type = boost::asio::io_context::executor_type;
  // The pool's reactor: where handlers without an executor of their own run.
  executor_type get_executor() const noexcept;

  // Every shutdown stops accepting calls (a later submit fails with
  // PoolShutdown, as do submits blocked at max_pending), is idempotent and
  // safe from any thread. As concurrent.futures' Executor.shutdown:
  //   - wait = true: returns once the calls already accepted have finished
  //     and the workers (idle by then: a Stop frame each) are reaped.
  //     Throws procpool::Error on the pool's own thread (a then() callback,
  //     a coroutine the pool resumed), where waiting would deadlock.
  //   - wait = false: returns at once, also from the pool's own thread; the
  //     accepted calls still finish, and the pool's own thread then stops
  //     and reaps the workers. Destroying the pool later waits as the
  //     destructor does (destructor_wait) and leaks nothing.
  //   - cancel_futures = true: calls no worker has begun fail with
  //     TaskCancelled at once (those cancel() can prove not begun); the
  //     running ones finish (and wait = true waits for them).
  // A later shutdown may wait where an earlier one did not, or cut it
  // short: terminate(), kill().
  void shutdown(ShutdownOptions how = {});
  // shutdown({.wait = wait}). shutdown(false) used to fail the pending calls
  // with PoolShutdown; that is terminate() now.
  void shutdown(bool wait);
  // Stops every worker now: a Stop frame to idle ones, SIGTERM to busy ones
  // (and their process groups), SIGKILL to those left after shutdown_grace.
  // Calls not yet settled, running or pending, fail with PoolShutdown.
  // Returns within shutdown_grace (plus reaping); at once on the pool's own
  // thread, which finishes the stop once the callback returns.
  void terminate();
  // terminate() without the grace: SIGKILL to every worker at once.
  void kill();

  // The number of workers the pool keeps (PoolOptions::workers, 0 resolved
  // to one per CPU), as Python's _max_workers: after a shutdown too, when
  // none is left (worker_pids() is empty then).
  size_t worker_count() const noexcept;
  // Pids of the live workers (for diagnostics and tests). In a process the
  // pool was forked into: procpool::Error (so do stats() and the shutdowns).
  std::vector<pid_t> worker_pids() const;
  // What the pool has done since it was made (calls by outcome, worker
  // deaths and replacements) and holds now (queue depth, calls in workers,
  // each worker's pid, calls and resident memory): pool_stats.hpp. Safe
  // from any thread; reads /proc once per worker.
  PoolStats stats() const;

 private:
  friend class EventLoop;
  friend void detail::submit_encoded_call(ProcessPool&, detail::ByteBuffer, detail::HandleList, detail::FrameKind,
                                          uint32_t, std::shared_ptr<detail::StateBase>, const CallOptions&);
  // Encodes a call and queues it; settles `state` (a new one if null).
  template <class R, class Encode>
  Future<R> enqueue(uint32_t function_id, const detail::FunctionEntry& entry, Encode&& encode,
                    detail::FrameKind kind = detail::FrameKind::Call,
                    std::shared_ptr<detail::SharedState<R>> state = nullptr, const CallOptions& options = {}) {
    return enqueue_into<R>(*core_, function_id, entry, std::forward<Encode>(encode), kind, std::move(state), options);
  }
  // The same on `core`: what submit_async and run_in_executor call once the
  // pool has room, holding the core only weakly meanwhile.
  template <class R, class Encode>
  static Future<R> enqueue_into(detail::PoolCore& core, uint32_t function_id, const detail::FunctionEntry& entry,
                                Encode&& encode, detail::FrameKind kind, std::shared_ptr<detail::SharedState<R>> state,
                                const CallOptions& options, detail::Admission admission = detail::Admission::Wait);
  // submit_with and call_with on `core`, taking a place as `admission` says.
  template <class R, class... A, class... Args>
  static Future<R> submit_on(detail::PoolCore& core, detail::Admission admission, const CallOptions& options,
                             std::type_identity_t<std::shared_ptr<detail::SharedState<R>>> state, R (*fn)(A...),
                             Args&&... args);
  template <class R, class... Args>
  static Future<R> call_on(detail::PoolCore& core, detail::Admission admission, const CallOptions& options,
                           std::shared_ptr<detail::SharedState<R>> state, std::string_view name, Args&&... args);
  // A callable `(Admission, state) -> Future<R>` that submits fn(args...)
  // (copied) into `state` (a new one if null) if the pool still exists.
  template <class R, class... A, class... Args>
  auto deferred_submit(const CallOptions& options, R (*fn)(A...), Args&&... args) const;
  template <class R, class... Args>
  auto deferred_call(const CallOptions& options, std::string_view name, Args&&... args) const;
  // For EventLoop::run_in_executor: submits now if there is room, else
  // returns a pending Future and submits once a place is free, from the
  // thread that frees it: never blocks the calling (loop) thread.
  template <class R, class Submit>
  Future<R> submit_when_room(Submit submit);
  std::shared_ptr<detail::Backpressure> backpressure() const noexcept;
  bool bounded() const noexcept { return options_max_pending_ != 0; }
  // Lets a blocked get() on a state the pool does not queue (a map's) poll
  // the pool's rings, as it would for a call.
  void watch(detail::StateBase& state) const;
  template <class R, class... A, class Token, class... Args>
  auto async_call_impl(const CallOptions& options, R (*fn)(A...), Token&& token, Args&&... args);
  // Sends fn(x) for every x of `inputs` as CallMany chunks, each settling
  // the state make_state(count) gives it.
  template <class Out, class R, class A, class Range, class MakeState>
  std::vector<std::shared_ptr<detail::SharedState<Out>>> send_chunks(R (*fn)(A), const Range& inputs,
                                                                     detail::ChunkPlan& plan, size_t chunksize,
                                                                     detail::ManyMode mode, MakeState make_state);
  template <class R, class A, class Range>
  detail::MapChunks<R> send_outcome_chunks(R (*fn)(A), const Range& inputs, size_t chunksize);
  // One future for all the chunks, settled when the last one is.
  template <class Out, bool kEach>
  Future<Out> gather_chunks(std::vector<std::shared_ptr<detail::SharedState<Out>>> parts,
                            const detail::ChunkPlan& plan);
  static void enqueue_frame(detail::PoolCore& core, detail::ByteBuffer frame, detail::HandleList handles,
                            detail::FrameKind kind, uint32_t function_id, std::shared_ptr<detail::StateBase> state,
                            const CallOptions& options, detail::Admission admission);
  static size_t max_message_bytes(const detail::PoolCore& core) noexcept;

  size_t options_max_pending_;  // PoolOptions::max_pending; before core_, which takes the options
  std::shared_ptr<detail::PoolCore> core_;
  int uncaught_at_construction_;  // see ~ProcessPool
};

// ---- implementation ----

template <class R, class Encode>
Future<R> ProcessPool::enqueue_into(detail::PoolCore& core, uint32_t function_id, const detail::FunctionEntry& entry,
                                    Encode&& encode, detail::FrameKind kind,
                                    std::shared_ptr<detail::SharedState<R>> state, const CallOptions& options,
                                    detail::Admission admission) {
  if (!state) state = std::make_shared<detail::SharedState<R>>();
  detail::ByteBuffer frame;
  detail::HandleList handles;  // the SharedBytes among the arguments
  std::exception_ptr failure;
  try {
    frame.grow(sizeof(detail::FrameHeader));
  } catch (const std::exception& e) {
    failure = std::make_exception_ptr(
        SerializationError(entry.name, std::string("the arguments could not be encoded: ") + e.what()));
  }
  if (!failure) {
    detail::FrameSink sink(frame, core);
    failure = detail::encode_call(frame, sink, handles, function_id, entry, std::forward<Encode>(encode),
                                  max_message_bytes(core));
  }
  if (failure) {
    state->settle_error(std::move(failure));
    return Future<R>(std::move(state));
  }
  enqueue_frame(core, std::move(frame), std::move(handles), kind, function_id, state, options, admission);
  return Future<R>(std::move(state));
}

template <class R, class... A, class... Args>
Future<R> ProcessPool::submit(R (*fn)(A...), Args&&... args) {
  return submit_with(CallOptions{}, fn, std::forward<Args>(args)...);
}

template <class R, class... A, class... Args>
Future<R> ProcessPool::submit_with(const CallOptions& options, R (*fn)(A...), Args&&... args) {
  return submit_on(*core_, detail::Admission::Wait, options, nullptr, fn, std::forward<Args>(args)...);
}

template <class R, class... Args>
Future<R> ProcessPool::call(std::string_view name, Args&&... args) {
  return call_with<R>(CallOptions{}, name, std::forward<Args>(args)...);
}

template <class R, class... Args>
Future<R> ProcessPool::call_with(const CallOptions& options, std::string_view name, Args&&... args) {
  return call_on<R>(*core_, detail::Admission::Wait, options, nullptr, name, std::forward<Args>(args)...);
}

namespace detail {
template <class R>
struct CallSignature {
  using type = void(std::exception_ptr, R);
};
template <>
struct CallSignature<void> {
  using type = void(std::exception_ptr);
};

// A pool call as an Asio asynchronous operation, for every pool's
// async_call: `submit(call_args...)` gives the call's Future<R> when Asio
// initiates the operation (at once for a callback or use_future, when
// awaited for use_awaitable); the handler runs with (exception_ptr[, R])
// through its associated executor (`fallback` if it has none), never
// inline, and a work guard keeps that executor busy meanwhile.
template <class R, class Submit, class Executor, class Token, class... Args>
auto async_pool_call(Submit submit, Executor fallback, Token&& token, Args&&... args) {
  static_assert(std::is_void_v<R> || std::is_default_constructible_v<R>,
                "async_call needs a default-constructible result type (the error path passes R{})");
  using Signature = typename CallSignature<R>::type;
  auto initiation = [submit = std::move(submit), fallback](auto handler, auto&&... call_args) mutable {
    using Handler = decltype(handler);
    Future<R> future = submit(std::forward<decltype(call_args)>(call_args)...);
    auto executor = boost::asio::get_associated_executor(handler, fallback);
    // Shared: std::function (under Future::then) needs a copyable callable,
    // and Asio handlers may be move-only.
    auto shared = std::make_shared<Handler>(std::move(handler));
    auto work = std::make_shared<boost::asio::executor_work_guard<decltype(executor)>>(executor);
    // The work guard is released by this thread after its post() returns
    // (the queued handler then keeps the context busy), never by the
    // handler: the context may be destroyed as soon as the handler ran.
    future.then([shared, work](Future<R> done) {
      std::exception_ptr error;
      if constexpr (std::is_void_v<R>) {
        try {
          done.get();
        } catch (...) {
          error = std::current_exception();
        }
        boost::asio::post(work->get_executor(), [shared, error]() mutable { (*shared)(error); });
      } else {
        auto value = std::make_shared<R>();
        try {
          *value = done.get();
        } catch (...) {
          error = std::current_exception();
        }
        boost::asio::post(work->get_executor(),
                          [shared, error, value]() mutable { (*shared)(error, std::move(*value)); });
      }
      work->reset();
    });
  };
  return boost::asio::async_initiate<Token, Signature>(std::move(initiation), token, std::forward<Args>(args)...);
}

// Splits async_call's arguments: the last is the completion token.
template <class Impl, class... ArgsAndToken>
auto with_token_last(Impl&& impl, ArgsAndToken&&... args_and_token) {
  constexpr size_t kArgs = sizeof...(ArgsAndToken) - 1;
  auto all = std::forward_as_tuple(std::forward<ArgsAndToken>(args_and_token)...);
  return [&]<size_t... I>(std::index_sequence<I...>) {
    return impl(std::get<kArgs>(std::move(all)), std::get<I>(std::move(all))...);
  }
  (std::make_index_sequence<kArgs>{});
}
}  // namespace detail

template <class Fn, class... ArgsAndToken>
auto ProcessPool::async_call(Fn fn, ArgsAndToken&&... args_and_token) {
  static_assert(sizeof...(ArgsAndToken) >= 1, "usage: pool.async_call(fn, args..., completion_token)");
  return async_call_with(CallOptions{}, fn, std::forward<ArgsAndToken>(args_and_token)...);
}

template <class Fn, class... ArgsAndToken>
auto ProcessPool::async_call_with(const CallOptions& options, Fn fn, ArgsAndToken&&... args_and_token) {
  static_assert(sizeof...(ArgsAndToken) >= 1, "usage: pool.async_call_with(options, fn, args..., completion_token)");
  return detail::with_token_last(
      [&](auto&& token, auto&&... args) {
        return async_call_impl(options, fn, std::forward<decltype(token)>(token),
                               std::forward<decltype(args)>(args)...);
      },
      std::forward<ArgsAndToken>(args_and_token)...);
}

template <class R, class... A, class Token, class... Args>
auto ProcessPool::async_call_impl(const CallOptions& options, R (*fn)(A...), Token&& token, Args&&... args) {
  return detail::async_pool_call<R>(
      [this, fn, options](auto&&... call_args) {
        return submit_with(options, fn, std::forward<decltype(call_args)>(call_args)...);
      },
      get_executor(), std::forward<Token>(token), std::forward<Args>(args)...);
}

}  // namespace procpool

#include <procpool/loop/process_pool_map.hpp>
#include <procpool/loop/process_pool_submit.hpp>
