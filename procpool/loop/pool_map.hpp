// SPDX-License-Identifier: MIT
#pragma once
// The map family's bookkeeping: the chunks of one map travel as CallMany
// frames (frame.hpp), each with a state of its own; MapGather settles a
// map's future when the last chunk has settled (imap and imap_unordered
// read the chunks' states themselves: map_stream.hpp).
#include <algorithm>
#include <atomic>
#include <concepts>
#include <exception>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <procpool/common/archive.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/common/exception_codec.hpp>
#include <procpool/common/shared_bytes.hpp>
#include <procpool/loop/call_encoding.hpp>
#include <procpool/loop/future_state.hpp>
#include <procpool/loop/result.hpp>

namespace procpool::detail {

template <class R>
using map_result_t = std::conditional_t<std::is_void_v<R>, void, std::vector<R>>;

// At most this many calls go in one frame: the archive refuses a count of
// elements larger than the bytes present plus this allowance (a forgery
// check), and results or arguments of an empty type take no bytes.
inline constexpr size_t kMaxChunk = static_cast<size_t>(kEmptyElementAllowance);

// How many calls go in one frame when the caller leaves it to the pool:
// about 8 chunks per worker, so that the load evens out as chunks finish,
// and at most 1024 calls, so that a crash or an exception costs little.
inline size_t default_chunk_size(size_t calls, size_t workers) {
  size_t chunks = 8 * (workers ? workers : 1);
  return std::clamp<size_t>((calls + chunks - 1) / chunks, 1, 1024);
}

// How `calls` calls are cut into chunks of `size` (the last may be short).
struct ChunkPlan {
  size_t calls = 0;
  size_t size = 1;
  size_t chunks() const noexcept { return calls / size + (calls % size != 0); }  // calls + size - 1 may overflow
  size_t first(size_t chunk) const noexcept { return chunk * size; }
  size_t count(size_t chunk) const noexcept { return std::min(size, calls - chunk * size); }
};

// A chunk size as the caller gave it, 0 for the pool's choice. A negative
// one is the caller's mistake, not a request for one chunk of everything (as
// it would silently become once converted to size_t).
template <std::integral Chunk>
size_t checked_chunk_size(Chunk chunksize) {
  static_assert(!std::is_same_v<Chunk, bool>, "chunksize is a count, not a flag");
  if constexpr (std::is_signed_v<Chunk>) {
    if (chunksize < 0)
      throw std::invalid_argument("procpool: map's chunksize must be 0 (the pool picks) or positive, not " +
                                  std::to_string(chunksize));
  }
  return static_cast<size_t>(chunksize);
}

// A chunk's answer must hold one result per call: a worker that answers
// with fewer or more would shift results onto other inputs. The mismatch
// fails to decode, which the pool reports as the worker's ProtocolError.
template <class R>
class ChunkState final : public SharedState<std::vector<R>> {
 public:
  explicit ChunkState(size_t calls) noexcept : calls_(calls) {}
  void load_value(InputArchive& in, const AnswerSource& from) override {
    SharedState<std::vector<R>>::load_value(in, from);
    size_t results = this->value_ ? this->value_->size() : 0;
    if (results != calls_)
      throw DecodeError(std::to_string(results) + " results for a chunk of " + std::to_string(calls_) + " calls");
  }

 private:
  size_t calls_;
};

// A chunk that answers each call's outcome (ManyMode::EachOutcome): a size
// tag, then per call `true` and its result, or `false` and its exception
// record as a size-tagged blob. The record is decoded from its own bytes,
// so that one whose fields could not all be read leaves the next call's
// outcome in step.
template <class R>
class OutcomeChunkState final : public SharedState<std::vector<Result<R>>> {
 public:
  explicit OutcomeChunkState(size_t calls) noexcept : calls_(calls) {}
  void load_value(InputArchive& in, const AnswerSource& from) override {
    cereal::size_type n = 0;
    in(cereal::make_size_tag(n));
    if (n != calls_)
      throw DecodeError(std::to_string(n) + " results for a chunk of " + std::to_string(calls_) + " calls");
    std::vector<Result<R>> outcomes;
    outcomes.reserve(calls_);
    ByteBuffer record;
    for (size_t i = 0; i < calls_; ++i) {
      bool ok = false;
      in(ok);
      if (ok) {
        if constexpr (std::is_void_v<R>) {
          outcomes.emplace_back(std::in_place);
        } else {
          R value{};
          in(value);
          outcomes.emplace_back(std::in_place, std::move(value));
        }
        continue;
      }
      cereal::size_type size = 0;
      in(cereal::make_size_tag(size));
      if (size > in.remaining()) throw DecodeError("an exception record longer than the answer");
      record.resize(static_cast<size_t>(size));
      in.loadBinary(record.data(), static_cast<std::streamsize>(size));
      InputArchive fields(record.data(), record.size());
      std::shared_ptr<const RemoteOrigin> origin;
      std::exception_ptr error = decode_exception(fields, from.function, from.pid, &origin);
      outcomes.emplace_back(std::move(error), std::move(origin));
    }
    this->value_.emplace(std::move(outcomes));
  }

 private:
  size_t calls_;
};

// A void chunk's answer carries no results, so there is nothing to miscount.
template <class R>
std::shared_ptr<SharedState<map_result_t<R>>> chunk_state(size_t calls) {
  if constexpr (std::is_void_v<R>) return std::make_shared<SharedState<void>>();
  else return std::make_shared<ChunkState<R>>(calls);
}

// kEach: Out is a vector of Results, one per call, and a chunk that failed
// as a whole (its worker crashed) gives each of its calls that error;
// otherwise the earliest failed chunk fails the map.
template <class Out, bool kEach = false>
class MapGather {
 public:
  MapGather(std::shared_ptr<SharedState<Out>> whole, size_t parts)
      : whole_(std::move(whole)), parts_(parts), counts_(parts), left_(parts + 1) {}

  // Before seal(): the i-th chunk's state and how many calls it holds.
  void set_part(size_t i, std::shared_ptr<SharedState<Out>> part, size_t count) {
    parts_[i] = std::move(part);
    counts_[i] = count;
  }
  // After every set_part: from now on the last part to settle settles the
  // whole. (left_ starts one above the count, so no part can finish the
  // map while parts_ is still being filled.)
  void seal() { part_done(); }

  // Runs once per part, on whichever thread settles it.
  void part_done() {
    // acq_rel: the thread that takes left_ to zero sees every part's result.
    if (left_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    if constexpr (!kEach) {
      for (auto& part : parts_)
        if (part->failed()) {
          whole_->settle_as(*part);  // the earliest chunk that failed, as Python's map raises
          return;
        }
    }
    if (!whole_->try_claim()) return;
    try {
      if constexpr (!std::is_void_v<Out>) {
        Out all;
        for (size_t i = 0; i < parts_.size(); ++i) {
          auto& part = parts_[i];
          if constexpr (kEach) {
            if (part->failed()) {
              for (size_t k = 0; k < counts_[i]; ++k) all.emplace_back(part->error(), part->origin());
              continue;
            }
          }
          Out some = part->take();
          if (all.empty()) all = std::move(some);
          else all.insert(all.end(), std::make_move_iterator(some.begin()), std::make_move_iterator(some.end()));
        }
        whole_->set_value(std::move(all));
      }
    } catch (...) {
      whole_->set_error(std::current_exception());
    }
    whole_->publish();
  }

 private:
  std::shared_ptr<SharedState<Out>> whole_;
  std::vector<std::shared_ptr<SharedState<Out>>> parts_;
  std::vector<size_t> counts_;
  std::atomic<size_t> left_;
};

// A map's own future. cancel() cancels each chunk as Future::cancel would
// (withdrawn if its worker has not begun it; if it has, its worker stopped
// when the call's cancel_running says so, else it runs on) and fails the
// map with TaskCancelled at once: as a concurrent.futures map's iterator,
// closed, cancels the calls it has not yielded, and Pebble's map future
// cancels what is left. A chunk that could not be withdrawn still ends in
// its worker; its outcome is dropped. False if the map had settled first
// (with its results, or the error of a chunk that failed before).
template <class Out>
class MapState final : public SharedState<Out> {
 public:
  // Before the state is shared.
  void set_parts(const std::vector<std::shared_ptr<SharedState<Out>>>& parts) {
    parts_.assign(parts.begin(), parts.end());
  }
  bool cancel() override {
    if (this->ready()) return false;
    for (auto& weak : parts_)
      if (auto part = weak.lock()) (void)part->cancel();
    (void)this->settle_error(
        std::make_exception_ptr(TaskCancelled("the map was cancelled before all its calls had finished")));
    return this->cancelled();  // else a chunk's error settled it first
  }

 private:
  std::vector<std::weak_ptr<StateBase>> parts_;
};

// What own() gives (below) for inputs that cannot be copied: such a chunk
// is sent as a submit is, blocking at max_pending.
struct NoOwnedCopy {};

// Cuts `inputs` into chunks as `plan` (filled here) says, and hands each
// chunk's call of fn to `enqueue(function id, entry, encode, own, state)`
// as a CallMany frame's arguments (ManyMode `mode`, a size tag, the inputs
// converted to A), its state made by make_state(count). `encode` reads the
// caller's range and is good only during the call; own() returns an
// encoder holding copies of the chunk's inputs, for a chunk that must wait
// for room under max_pending (send_when_room), or NoOwnedCopy. A pool's map (ProcessPool's,
// MpiPool's) sends them and gathers the states.
template <class Out, class R, class A, class Range, class MakeState, class Enqueue>
std::vector<std::shared_ptr<SharedState<Out>>> send_map_chunks(R (*fn)(A), const Range& inputs, ChunkPlan& plan,
                                                               size_t chunksize, size_t workers, ManyMode mode,
                                                               MakeState make_state, Enqueue enqueue) {
  static_assert(std::is_constructible_v<std::decay_t<A>, decltype(*std::begin(inputs))>,
                "an input cannot be converted to the function's parameter type");
  static_assert(!kBuiltByLoadAndConstruct<R>,
                "map's results travel as a std::vector, which needs a default-constructible type; submit each call");
  plan.calls = static_cast<size_t>(std::size(inputs));
  size_t chunk = chunksize ? chunksize : default_chunk_size(plan.calls, workers);
  // Each SharedBytes input or result is a descriptor, and a frame carries
  // at most kMaxHandlesPerFrame.
  if (!chunksize && (std::is_same_v<std::decay_t<A>, SharedBytes> || std::is_same_v<R, SharedBytes>))
    chunk = std::min(chunk, kMaxHandlesPerFrame);
  plan.size = std::min(chunk, kMaxChunk);
  uint32_t id = 0;
  std::exception_ptr failure;
  const FunctionEntry* entry = entry_of(fn, id, failure);
  std::vector<std::shared_ptr<SharedState<Out>>> states;
  states.reserve(plan.chunks());
  auto next = std::begin(inputs);
  for (size_t c = 0; c < plan.chunks(); ++c) {
    size_t count = plan.count(c);
    auto first = next;
    std::advance(next, count);  // here, so that a chunk that fails to encode does not shift the next
    std::shared_ptr<SharedState<Out>> state = make_state(count);
    if (!entry) {
      state->settle_error(failure);
    } else {
      auto own = [&] {
        if constexpr (!std::is_copy_constructible_v<std::decay_t<A>>) {
          return NoOwnedCopy{};  // move-only inputs: the chunk cannot wait with copies
        } else {
          std::vector<std::decay_t<A>> copies;
          copies.reserve(count);
          auto it = first;
          for (size_t i = 0; i < count; ++i, ++it) copies.emplace_back(*it);
          return [mode, copies = std::move(copies)](OutputArchive& ar) {
            ar(static_cast<uint8_t>(mode), cereal::make_size_tag(static_cast<cereal::size_type>(copies.size())));
            for (const auto& x : copies) encode_argument<A>(ar, x);
          };
        }
      };
      enqueue(
          id, *entry,
          [&](OutputArchive& ar) {
            ar(static_cast<uint8_t>(mode), cereal::make_size_tag(static_cast<cereal::size_type>(count)));
            auto it = first;
            for (size_t i = 0; i < count; ++i, ++it) encode_argument<A>(ar, *it);
          },
          own, state);
    }
    states.push_back(std::move(state));
  }
  return states;
}

// One state for all the chunks, settled when the last one is (MapGather);
// `watch(state)` gives it its pool's poller first.
template <class Out, bool kEach, class Watch>
std::shared_ptr<SharedState<Out>> gather_map_chunks(std::vector<std::shared_ptr<SharedState<Out>>> parts,
                                                    const ChunkPlan& plan, Watch watch) {
  auto whole = std::make_shared<MapState<Out>>();
  whole->set_parts(parts);
  watch(*whole);
  auto gather = std::make_shared<MapGather<Out, kEach>>(whole, parts.size());
  for (size_t p = 0; p < parts.size(); ++p) {
    gather->set_part(p, parts[p], plan.count(p));
    parts[p]->on_ready_anywhere([gather] { gather->part_done(); });
  }
  gather->seal();
  return whole;
}

}  // namespace procpool::detail
