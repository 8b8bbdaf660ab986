// SPDX-License-Identifier: MIT
#pragma once
// What pool.imap and pool.imap_unordered return: each element's outcome as
// soon as it can be given, read by one thread.
//
//   for (procpool::Result<long> r : pool.imap(fn, inputs)) use(r.value());
//   for (auto [i, r] : pool.imap_unordered(fn, inputs)) use(i, r.value());
//
// A chunk's outcomes come together (one frame answers a chunk), so an
// element is ready when its chunk's answer is in: imap gives it once it and
// every element before it are ready, imap_unordered in the order chunks
// are answered, a chunk's elements in input order. Dropping a stream early
// does not stop its calls; they run and their results are discarded.
#include <cstddef>
#include <deque>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include <procpool/common/errors.hpp>
#include <procpool/loop/pool_map.hpp>
#include <procpool/loop/result.hpp>

namespace procpool {

template <class R>
struct IndexedResult {
  size_t index;  // of the input it came from
  Result<R> result;
};

namespace detail {

template <class R>
using Outcomes = std::vector<Result<R>>;

// The chunks of one stream, in input order.
template <class R>
struct MapChunks {
  ChunkPlan plan;
  std::vector<std::shared_ptr<SharedState<Outcomes<R>>>> states;
};

// A chunk's outcomes once its state is ready; a chunk that failed as a
// whole (a crash, a malformed answer) gives each of its elements the error.
template <class R>
Outcomes<R> take_outcomes(SharedState<Outcomes<R>>& state, size_t count) {
  if (!state.failed()) return state.take();
  Outcomes<R> each;
  each.reserve(count);
  for (size_t i = 0; i < count; ++i) each.emplace_back(state.error(), state.origin());
  return each;
}

// Cancels a stream's chunks still out, each as Future::cancel would (its
// elements then read as TaskCancelled); returns how many it cancelled.
// With `withdraw_only`, only those the pool can withdraw without stopping a
// worker (Poller::withdraw), so that a stream left unread stops none.
template <class R>
size_t cancel_chunks(MapChunks<R>& chunks, bool withdraw_only) {
  size_t cancelled = 0;
  for (auto& state : chunks.states)
    if (state && !state->ready()) cancelled += (withdraw_only ? state->withdraw() : state->cancel()) ? 1 : 0;
  return cancelled;
}

// A blocking input iterator over a stream's next(), for range-for.
template <class Stream, class Item>
class StreamIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = Item;
  using difference_type = std::ptrdiff_t;
  StreamIterator() = default;
  explicit StreamIterator(Stream* stream) : stream_(stream) { ++*this; }
  Item& operator*() { return *item_; }
  StreamIterator& operator++() {
    if (stream_->done()) item_.reset();
    else item_.emplace(stream_->next());
    return *this;
  }
  void operator++(int) { ++*this; }
  friend bool operator==(const StreamIterator& it, std::default_sentinel_t) noexcept { return !it.item_; }

 private:
  Stream* stream_ = nullptr;
  std::optional<Item> item_;
};

// Chunk numbers in the order their states settle, for imap_unordered. The
// reader sleeps on `wake`, a state of its own that a settling chunk settles:
// its wait polls the pool's rings first, as a Future's does.
struct SettledChunks {
  std::mutex mutex;
  std::deque<size_t> settled;
  std::shared_ptr<SharedState<void>> wake;
  void note(size_t chunk) {
    std::shared_ptr<SharedState<void>> sleeper;
    {
      std::lock_guard lock(mutex);
      settled.push_back(chunk);
      sleeper = std::move(wake);
    }
    if (sleeper && sleeper->try_claim()) sleeper->publish();
  }
};

}  // namespace detail

// pool.imap: each element's Result in input order. Not thread-safe: one
// reader. next() blocks like Future::get() (polling the pool's rings first)
// and, on the pool's own thread, throws procpool::Error rather than wait.
//
// Left before its end (destroyed), it withdraws the chunks it can without
// stopping a worker (those queued, or behind another in a worker's ring),
// as a concurrent.futures map iterator, closed, cancels the calls it has
// not yielded; the others end in their workers, unread.
template <class R>
class MapStream {
 public:
  explicit MapStream(detail::MapChunks<R> chunks) : chunks_(std::move(chunks)) {}
  MapStream(MapStream&&) noexcept = default;
  // The stream it held is left, as by its destruction.
  MapStream& operator=(MapStream&& other) noexcept {
    if (this != &other) {
      std::destroy_at(this);
      std::construct_at(this, std::move(other));
    }
    return *this;
  }
  ~MapStream() { detail::cancel_chunks(chunks_, true); }
  // Cancels every chunk not yet read, as Future::cancel would (withdrawn,
  // or its worker stopped if running); their elements then come out as
  // Results holding TaskCancelled. Returns how many chunks it cancelled.
  size_t cancel() { return detail::cancel_chunks(chunks_, false); }
  size_t size() const noexcept { return chunks_.plan.calls; }
  // Every element has been given.
  bool done() const noexcept { return given_ == size(); }
  // The next element's outcome; throws procpool::Error when done().
  Result<R> next() {
    if (done()) throw Error("MapStream::next(): every element was given");
    if (at_ == buffer_.size()) {
      auto& state = *chunks_.states[chunk_];
      state.wait();
      buffer_ = detail::take_outcomes(state, chunks_.plan.count(chunk_));
      chunks_.states[chunk_++].reset();
      at_ = 0;
    }
    ++given_;
    return std::move(buffer_[at_++]);
  }
  using iterator = detail::StreamIterator<MapStream, Result<R>>;
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  detail::MapChunks<R> chunks_;
  size_t chunk_ = 0;  // the next chunk to read
  detail::Outcomes<R> buffer_;
  size_t at_ = 0;
  size_t given_ = 0;
};

// pool.imap_unordered: each element's index and Result, a chunk at a time
// in the order chunks are answered. Blocking, threads, cancel() and what
// leaving it does as MapStream.
template <class R>
class UnorderedMapStream {
 public:
  explicit UnorderedMapStream(detail::MapChunks<R> chunks)
      : chunks_(std::move(chunks)), settled_(std::make_shared<detail::SettledChunks>()) {
    for (size_t c = 0; c < chunks_.states.size(); ++c)
      chunks_.states[c]->on_ready_anywhere([settled = settled_, c] { settled->note(c); });
  }
  UnorderedMapStream(UnorderedMapStream&&) noexcept = default;
  UnorderedMapStream& operator=(UnorderedMapStream&& other) noexcept {
    if (this != &other) {
      std::destroy_at(this);
      std::construct_at(this, std::move(other));
    }
    return *this;
  }
  ~UnorderedMapStream() { detail::cancel_chunks(chunks_, true); }
  size_t cancel() { return detail::cancel_chunks(chunks_, false); }
  size_t size() const noexcept { return chunks_.plan.calls; }
  bool done() const noexcept { return given_ == size(); }
  IndexedResult<R> next() {
    if (done()) throw Error("UnorderedMapStream::next(): every element was given");
    if (at_ == buffer_.size()) {
      size_t c = wait_for_a_chunk();
      buffer_ = detail::take_outcomes(*chunks_.states[c], chunks_.plan.count(c));
      chunks_.states[c].reset();
      first_ = chunks_.plan.first(c);
      at_ = 0;
    }
    ++given_;
    size_t i = at_++;
    return IndexedResult<R>{first_ + i, std::move(buffer_[i])};
  }
  using iterator = detail::StreamIterator<UnorderedMapStream, IndexedResult<R>>;
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  size_t wait_for_a_chunk() {
    for (;;) {
      auto wake = std::make_shared<detail::SharedState<void>>();
      for (auto& state : chunks_.states)
        if (state) {
          wake->set_poller(state->poller(), 0);  // any chunk still out leads to the pool
          break;
        }
      {
        std::lock_guard lock(settled_->mutex);
        if (!settled_->settled.empty()) {
          size_t c = settled_->settled.front();
          settled_->settled.pop_front();
          return c;
        }
        settled_->wake = wake;
      }
      wake->wait();
    }
  }

  detail::MapChunks<R> chunks_;
  std::shared_ptr<detail::SettledChunks> settled_;
  detail::Outcomes<R> buffer_;
  size_t first_ = 0;  // the input index of buffer_[0]
  size_t at_ = 0;
  size_t given_ = 0;
};

}  // namespace procpool
