// SPDX-License-Identifier: MIT
#pragma once
// MpiPool's templates: how a call is checked against the registry, encoded
// and handed to the link (enqueue, under max_pending as its Admission
// says); the forms that do not block (submit_async, submit_when_room) and
// async_call, through the same pieces as ProcessPool's
// (loop/process_pool_submit.hpp, loop/process_pool.hpp); map's chunks.
// Included at the end of mpi_pool.hpp.
#include <memory>
#include <tuple>
#include <utility>

#include <procpool/mpi/mpi_pool.hpp>

namespace procpool::mpi {

template <class R, class... A, class... Args>
Future<R> MpiPool::submit_on(const std::shared_ptr<detail::PoolCore>& core, procpool::detail::Admission admission,
                             const CallOptions& options,
                             std::type_identity_t<std::shared_ptr<procpool::detail::SharedState<R>>> state,
                             R (*fn)(A...), Args&&... args) {
  auto encode = procpool::detail::typed_arguments<A...>(std::forward<Args>(args)...);
  uint32_t id = 0;
  std::exception_ptr failure;
  const procpool::detail::FunctionEntry* entry = procpool::detail::entry_of(fn, id, failure);
  if (!entry) return procpool::detail::failed_future<R>(failure, std::move(state));
  return enqueue<R>(core, admission, id, *entry, encode, options, procpool::detail::FrameKind::Call, std::move(state));
}

template <class R, class... Args>
Future<R> MpiPool::call_on(const std::shared_ptr<detail::PoolCore>& core, procpool::detail::Admission admission,
                           const CallOptions& options, std::shared_ptr<procpool::detail::SharedState<R>> state,
                           std::string_view name, Args&&... args) {
  uint32_t id = 0;
  std::exception_ptr failure;
  const procpool::detail::FunctionEntry* entry = procpool::detail::entry_named<R, Args...>(name, id, failure);
  if (!entry) return procpool::detail::failed_future<R>(failure, std::move(state));
  return enqueue<R>(core, admission, id, *entry, procpool::detail::named_arguments(args...), options,
                    procpool::detail::FrameKind::Call, std::move(state));
}

template <class R, class Encode>
Future<R> MpiPool::enqueue(const std::shared_ptr<detail::PoolCore>& core, procpool::detail::Admission admission,
                           uint32_t id, const procpool::detail::FunctionEntry& entry, Encode&& encode,
                           const CallOptions& options, procpool::detail::FrameKind kind,
                           std::shared_ptr<procpool::detail::SharedState<R>> state) {
  if (!state) state = std::make_shared<procpool::detail::SharedState<R>>();
  if (!detail::admit(core, *state, entry.name, admission)) return Future<R>(std::move(state));
  procpool::detail::ByteBuffer frame;
  procpool::detail::HandleList handles;
  std::exception_ptr failure;
  try {
    frame.grow(sizeof(procpool::detail::FrameHeader));
    failure = procpool::detail::encode_call(frame, frame, handles, id, entry, std::forward<Encode>(encode),
                                            core->max_message_bytes);
  } catch (...) {
    failure = std::current_exception();  // out of memory
  }
  if (failure) {
    state->settle_error(std::move(failure));  // refused: not counted, as ProcessPool's
    return Future<R>(std::move(state));
  }
  detail::count(core, *state);
  detail::send_call(*core->link, std::move(frame), handles, kind, entry, options, state);
  return Future<R>(std::move(state));
}

template <class R, class... A, class... Args>
auto MpiPool::deferred_submit(const CallOptions& options, R (*fn)(A...), Args&&... args) const {
  static_assert(sizeof...(A) == sizeof...(Args), "wrong number of arguments for this function");
  // Converted to the parameter types now: nothing the caller passed (a
  // char array, a temporary) is referred to once this returns. The core
  // outlives the pool: a submit that runs after it finds it closed.
  return [core = core_, options, fn, call = std::tuple<std::decay_t<A>...>(std::forward<Args>(args)...)](
             procpool::detail::Admission admission, std::shared_ptr<procpool::detail::SharedState<R>> state) mutable {
    if (!state) state = std::make_shared<procpool::detail::SharedState<R>>();
    // A place granted is tied to the state first: whatever settles it
    // gives the place back.
    if (admission == procpool::detail::Admission::Reserved) core->room->release_when_settled(*state);
    return std::apply(
        [&](auto&... xs) { return submit_on(core, admission, options, std::move(state), fn, std::move(xs)...); }, call);
  };
}

template <class R, class... Args>
auto MpiPool::deferred_call(const CallOptions& options, std::string_view name, Args&&... args) const {
  return
      [core = core_, options, name = std::string(name), call = std::tuple<procpool::detail::named_t<Args>...>(args...)](
          procpool::detail::Admission admission, std::shared_ptr<procpool::detail::SharedState<R>> state) mutable {
        if (!state) state = std::make_shared<procpool::detail::SharedState<R>>();
        if (admission == procpool::detail::Admission::Reserved) core->room->release_when_settled(*state);
        return std::apply(
            [&](auto&... xs) { return call_on<R>(core, admission, options, std::move(state), name, std::move(xs)...); },
            call);
      };
}

template <class R, class... A, class... Args>
auto MpiPool::submit_async(R (*fn)(A...), Args&&... args) {
  auto submit = deferred_submit(CallOptions{}, fn, std::forward<Args>(args)...);
  return procpool::detail::SubmitAwaitable<R, decltype(submit)>(core_->room, std::move(submit));
}

template <class R, class... A, class... Args>
Future<R> MpiPool::submit_when_room(const CallOptions& options, R (*fn)(A...), Args&&... args) {
  if (!core_->room) return submit_with(options, fn, std::forward<Args>(args)...);
  return procpool::detail::submit_when_room<R>(
      core_->room, [link = core_->link](procpool::detail::StateBase& s) { detail::watch(*link, s); },
      deferred_submit(options, fn, std::forward<Args>(args)...));
}

template <class R, class... Args>
Future<R> MpiPool::call_when_room(const CallOptions& options, std::string_view name, Args&&... args) {
  if (!core_->room) return call_with<R>(options, name, std::forward<Args>(args)...);
  return procpool::detail::submit_when_room<R>(
      core_->room, [link = core_->link](procpool::detail::StateBase& s) { detail::watch(*link, s); },
      deferred_call<R>(options, name, std::forward<Args>(args)...));
}

template <class Fn, class... ArgsAndToken>
auto MpiPool::async_call(Fn fn, ArgsAndToken&&... args_and_token) {
  static_assert(sizeof...(ArgsAndToken) >= 1, "usage: pool.async_call(fn, args..., completion_token)");
  return async_call_with(CallOptions{}, fn, std::forward<ArgsAndToken>(args_and_token)...);
}

template <class Fn, class... ArgsAndToken>
auto MpiPool::async_call_with(const CallOptions& options, Fn fn, ArgsAndToken&&... args_and_token) {
  static_assert(sizeof...(ArgsAndToken) >= 1, "usage: pool.async_call_with(options, fn, args..., completion_token)");
  return procpool::detail::with_token_last(
      [&](auto&& token, auto&&... args) {
        return async_call_impl(options, fn, std::forward<decltype(token)>(token),
                               std::forward<decltype(args)>(args)...);
      },
      std::forward<ArgsAndToken>(args_and_token)...);
}

template <class R, class... A, class Token, class... Args>
auto MpiPool::async_call_impl(const CallOptions& options, R (*fn)(A...), Token&& token, Args&&... args) {
  return procpool::detail::async_pool_call<R>(
      [this, fn, options](auto&&... call_args) {
        return submit_with(options, fn, std::forward<decltype(call_args)>(call_args)...);
      },
      get_executor(), std::forward<Token>(token), std::forward<Args>(args)...);
}

template <class Out, class R, class A, class Range, class MakeState>
std::vector<std::shared_ptr<procpool::detail::SharedState<Out>>> MpiPool::send_chunks(R (*fn)(A), const Range& inputs,
                                                                                      procpool::detail::ChunkPlan& plan,
                                                                                      size_t chunksize,
                                                                                      procpool::detail::ManyMode mode,
                                                                                      MakeState make_state) {
  return procpool::detail::send_map_chunks<Out>(
      fn, inputs, plan, chunksize, worker_count(), mode, std::move(make_state),
      [&](uint32_t id, const procpool::detail::FunctionEntry& entry, auto&& encode, auto&& own,
          std::shared_ptr<procpool::detail::SharedState<Out>> state) {
        using procpool::detail::Admission;
        // As ProcessPool's (loop/process_pool_map.hpp): a chunk that finds
        // no room waits for it with a copy of its inputs; map never blocks.
        if constexpr (procpool::detail::kChunkCanWait<decltype(own())>) {
          if (core_->room) {
            detail::watch(*core_->link, *state);
            auto send_with = [core = core_, id, entry = &entry](
                                 auto&& encoder, Admission admission,
                                 std::shared_ptr<procpool::detail::SharedState<Out>> state) {
              if (admission == Admission::Reserved) core->room->release_when_settled(*state);
              enqueue<Out>(core, admission, id, *entry, encoder, CallOptions{}, procpool::detail::FrameKind::CallMany,
                           std::move(state));
            };
            procpool::detail::send_chunk_when_room(*core_->room, std::move(state), send_with, encode, own);
            return;
          }
        }
        enqueue<Out>(core_, Admission::Wait, id, entry, encode, CallOptions{}, procpool::detail::FrameKind::CallMany,
                     std::move(state));
      });
}

template <class R, class A, class Range>
procpool::detail::MapChunks<R> MpiPool::outcome_chunks(R (*fn)(A), const Range& inputs, size_t chunksize) {
  procpool::detail::MapChunks<R> chunks;
  chunks.states = send_chunks<procpool::detail::Outcomes<R>>(
      fn, inputs, chunks.plan, chunksize, procpool::detail::ManyMode::EachOutcome,
      [](size_t count) { return std::make_shared<procpool::detail::OutcomeChunkState<R>>(count); });
  return chunks;
}

template <class Out, bool kEach>
Future<Out> MpiPool::gather(std::vector<std::shared_ptr<procpool::detail::SharedState<Out>>> parts,
                            const procpool::detail::ChunkPlan& plan) {
  return Future<Out>(procpool::detail::gather_map_chunks<Out, kEach>(
      std::move(parts), plan, [link = core_->link](procpool::detail::StateBase& s) { detail::watch(*link, s); }));
}

template <class R, class A, class Range, std::integral Chunk>
Future<procpool::detail::map_result_t<R>> MpiPool::map(R (*fn)(A), const Range& inputs, Chunk chunksize) {
  using Out = procpool::detail::map_result_t<R>;
  procpool::detail::ChunkPlan plan;
  auto parts = send_chunks<Out>(fn, inputs, plan, procpool::detail::checked_chunk_size(chunksize),
                                procpool::detail::ManyMode::StopAtFirstThrow,
                                [](size_t count) { return procpool::detail::chunk_state<R>(count); });
  return gather<Out, false>(std::move(parts), plan);
}

template <class R, class A, class Range, std::integral Chunk>
Future<std::vector<Result<R>>> MpiPool::map(ReturnExceptions, R (*fn)(A), const Range& inputs, Chunk chunksize) {
  auto chunks = outcome_chunks(fn, inputs, procpool::detail::checked_chunk_size(chunksize));
  return gather<procpool::detail::Outcomes<R>, true>(std::move(chunks.states), chunks.plan);
}

template <class R, class A, class Range, std::integral Chunk>
MapStream<R> MpiPool::imap(R (*fn)(A), const Range& inputs, Chunk chunksize) {
  return MapStream<R>(outcome_chunks(fn, inputs, procpool::detail::checked_chunk_size(chunksize)));
}

template <class R, class A, class Range, std::integral Chunk>
UnorderedMapStream<R> MpiPool::imap_unordered(R (*fn)(A), const Range& inputs, Chunk chunksize) {
  return UnorderedMapStream<R>(outcome_chunks(fn, inputs, procpool::detail::checked_chunk_size(chunksize)));
}

}  // namespace procpool::mpi
