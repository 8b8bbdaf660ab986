// SPDX-License-Identifier: MIT
#pragma once
// ProcessPool's map family (declared in process_pool.hpp): map, map with
// return_exceptions, imap and imap_unordered, and the chunking they share.
#include <procpool/loop/process_pool.hpp>

namespace procpool {

template <class Out, class R, class A, class Range, class MakeState>
std::vector<std::shared_ptr<detail::SharedState<Out>>> ProcessPool::send_chunks(R (*fn)(A), const Range& inputs,
                                                                                detail::ChunkPlan& plan,
                                                                                size_t chunksize, detail::ManyMode mode,
                                                                                MakeState make_state) {
  return detail::send_map_chunks<Out>(
      fn, inputs, plan, chunksize, worker_count(), mode, std::move(make_state),
      [&](uint32_t id, const detail::FunctionEntry& entry, auto&& encode, auto&& own,
          std::shared_ptr<detail::SharedState<Out>> state) {
        // Under max_pending a chunk that finds no room waits for it without
        // blocking the caller (an imap's reader gets the first results while
        // later chunks wait), with a copy of its inputs.
        if constexpr (detail::kChunkCanWait<decltype(own())>) {
          if (bounded()) {
            watch(*state);
            auto room = backpressure();
            auto send_with = [core = std::weak_ptr<detail::PoolCore>(core_), room, id, entry = &entry](
                                 auto&& encoder, detail::Admission admission,
                                 std::shared_ptr<detail::SharedState<Out>> state) {
              detail::submit_if_alive<Out>(
                  core, room, admission, std::move(state), [&](detail::PoolCore& pool, auto into) {
                    return enqueue_into<Out>(pool, id, *entry, encoder, detail::FrameKind::CallMany, std::move(into),
                                             CallOptions{}, admission);
                  });
            };
            detail::send_chunk_when_room(*room, std::move(state), send_with, encode, own);
            return;
          }
        }
        enqueue<Out>(id, entry, encode, detail::FrameKind::CallMany, std::move(state));
      });
}

template <class Out, bool kEach>
Future<Out> ProcessPool::gather_chunks(std::vector<std::shared_ptr<detail::SharedState<Out>>> parts,
                                       const detail::ChunkPlan& plan) {
  return Future<Out>(
      detail::gather_map_chunks<Out, kEach>(std::move(parts), plan, [this](detail::StateBase& s) { watch(s); }));
}

template <class R, class A, class Range, std::integral Chunk>
Future<detail::map_result_t<R>> ProcessPool::map(R (*fn)(A), const Range& inputs, Chunk chunksize) {
  using Out = detail::map_result_t<R>;
  size_t asked = detail::checked_chunk_size(chunksize);
  detail::ChunkPlan plan;
  auto parts = send_chunks<Out>(fn, inputs, plan, asked, detail::ManyMode::StopAtFirstThrow,
                                [](size_t count) { return detail::chunk_state<R>(count); });
  return gather_chunks<Out, false>(std::move(parts), plan);
}

template <class R, class A, class Range>
detail::MapChunks<R> ProcessPool::send_outcome_chunks(R (*fn)(A), const Range& inputs, size_t chunksize) {
  detail::MapChunks<R> chunks;
  chunks.states = send_chunks<detail::Outcomes<R>>(
      fn, inputs, chunks.plan, chunksize, detail::ManyMode::EachOutcome,
      [](size_t count) { return std::make_shared<detail::OutcomeChunkState<R>>(count); });
  return chunks;
}

template <class R, class A, class Range, std::integral Chunk>
Future<std::vector<Result<R>>> ProcessPool::map(ReturnExceptions, R (*fn)(A), const Range& inputs, Chunk chunksize) {
  detail::MapChunks<R> chunks = send_outcome_chunks(fn, inputs, detail::checked_chunk_size(chunksize));
  return gather_chunks<detail::Outcomes<R>, true>(std::move(chunks.states), chunks.plan);
}

template <class R, class A, class Range, std::integral Chunk>
MapStream<R> ProcessPool::imap(R (*fn)(A), const Range& inputs, Chunk chunksize) {
  return MapStream<R>(send_outcome_chunks(fn, inputs, detail::checked_chunk_size(chunksize)));
}

template <class R, class A, class Range, std::integral Chunk>
UnorderedMapStream<R> ProcessPool::imap_unordered(R (*fn)(A), const Range& inputs, Chunk chunksize) {
  return UnorderedMapStream<R>(send_outcome_chunks(fn, inputs, detail::checked_chunk_size(chunksize)));
}

}  // namespace procpool
