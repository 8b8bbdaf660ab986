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
  static_assert(std::is_constructible_v<std::decay_t<A>, decltype(*std::begin(inputs))>,
                "an input cannot be converted to the function's parameter type");
  static_assert(!detail::kBuiltByLoadAndConstruct<R>,
                "map's results travel as a std::vector, which needs a default-constructible type; submit each call");
  plan.calls = static_cast<size_t>(std::size(inputs));
  size_t chunk = chunksize ? chunksize : detail::default_chunk_size(plan.calls, worker_count());
  // Each SharedBytes input or result is a descriptor, and a frame carries
  // at most kMaxHandlesPerFrame.
  if (!chunksize && (std::is_same_v<std::decay_t<A>, SharedBytes> || std::is_same_v<R, SharedBytes>))
    chunk = std::min(chunk, detail::kMaxHandlesPerFrame);
  plan.size = std::min(chunk, detail::kMaxChunk);
  uint32_t id = 0;
  std::exception_ptr failure;
  const detail::FunctionEntry* entry = detail::entry_of(reinterpret_cast<detail::ErasedFn>(fn), id, failure);
  std::vector<std::shared_ptr<detail::SharedState<Out>>> states;
  states.reserve(plan.chunks());
  auto next = std::begin(inputs);
  for (size_t c = 0; c < plan.chunks(); ++c) {
    size_t count = plan.count(c);
    auto first = next;
    std::advance(next, count);  // here, so that a chunk that fails to encode does not shift the next
    std::shared_ptr<detail::SharedState<Out>> state = make_state(count);
    if (!entry) {
      state->settle_error(failure);
    } else {
      enqueue<Out>(
          id, *entry,
          [&](detail::OutputArchive& ar) {
            ar(static_cast<uint8_t>(mode), cereal::make_size_tag(static_cast<cereal::size_type>(count)));
            auto it = first;
            for (size_t i = 0; i < count; ++i, ++it) detail::encode_argument<A>(ar, *it);
          },
          detail::FrameKind::CallMany, state);
    }
    states.push_back(std::move(state));
  }
  return states;
}

template <class Out, bool kEach>
Future<Out> ProcessPool::gather_chunks(std::vector<std::shared_ptr<detail::SharedState<Out>>> parts,
                                       const detail::ChunkPlan& plan) {
  auto whole = std::make_shared<detail::SharedState<Out>>();
  watch(*whole);
  auto gather = std::make_shared<detail::MapGather<Out, kEach>>(whole, parts.size());
  for (size_t p = 0; p < parts.size(); ++p) {
    gather->set_part(p, parts[p], plan.count(p));
    parts[p]->on_ready_anywhere([gather] { gather->part_done(); });
  }
  gather->seal();
  return Future<Out>(std::move(whole));
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
