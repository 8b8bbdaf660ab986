// SPDX-License-Identifier: MIT
#pragma once
// A lock-free single-producer single-consumer ring of bytes in shared memory.
//
// Layout (RingHeader, then `capacity` data bytes, capacity a power of two):
//   head         producer-owned: total bytes ever published
//   tail         consumer-owned: total bytes ever consumed
//   data_event   EventWord: the consumer sleeps here waiting for data
//   space_event  EventWord: the producer waits here for free space
// Each field sits on its own cache line so the two sides never false-share.
// head and tail only grow (64-bit, no wrap in practice); the byte at
// position p lives at data[p & (capacity - 1)].
//
// Memory orders:
//   - The producer copies bytes, then head.store(release). The consumer's
//     head.load(acquire) makes those bytes visible before it reads them.
//   - The consumer reads bytes, then tail.store(release). The producer's
//     tail.load(acquire) orders its later overwrite after those reads.
//   - After either store, a seq_cst fence precedes the check of the peer's
//     sleeper bit (see event_word.hpp for why that loses no wake-up).
//
// Trust: one side of every ring is a worker, which may be buggy or hostile.
// Every index read from the peer is checked (0 <= head - tail <= capacity);
// a violation throws RingCorrupt, which the host turns into ProtocolError.
// Copies are bounds-checked against the local capacity, never the peer's.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>

#include <procpool/common/event_word.hpp>

namespace procpool::detail {

inline constexpr size_t kCacheLine = 64;

struct RingHeader {
  alignas(kCacheLine) std::atomic<uint64_t> head{0};
  alignas(kCacheLine) std::atomic<uint64_t> tail{0};
  alignas(kCacheLine) std::atomic<uint32_t> data_event{0};
  alignas(kCacheLine) std::atomic<uint32_t> space_event{0};
};
static_assert(std::atomic<uint64_t>::is_always_lock_free, "ring indices must be lock-free to be shared");
static_assert(std::is_standard_layout_v<RingHeader>, "RingHeader lives in shared memory");
static_assert(offsetof(RingHeader, tail) - offsetof(RingHeader, head) >= kCacheLine, "head and tail share a line");
static_assert(sizeof(RingHeader) == 4 * kCacheLine);

class RingCorrupt : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A view of one ring. Either side constructs its own over the same memory;
// only the methods of its role are called.
class ByteRing {
 public:
  ByteRing() = default;
  ByteRing(RingHeader* header, std::byte* data, size_t capacity) noexcept
      : h_(header), data_(data), cap_(capacity), mask_(capacity - 1),
        head_(header->head.load(std::memory_order_relaxed)), tail_(header->tail.load(std::memory_order_relaxed)) {}

  size_t capacity() const noexcept { return cap_; }
  RingHeader& header() noexcept { return *h_; }

  // ---- producer ----
  // Free bytes; refreshes the cached tail only when the cache says full.
  size_t free_space(size_t wanted) {
    size_t free = cap_ - static_cast<size_t>(head_ - tail_);
    if (free < wanted) {
      uint64_t t = h_->tail.load(std::memory_order_acquire);
      if (t > head_ || head_ - t > cap_) throw RingCorrupt("request ring tail out of range");
      tail_ = t;
      free = cap_ - static_cast<size_t>(head_ - tail_);
    }
    return free;
  }
  // Copies up to n bytes (as many as fit) without publishing them.
  size_t write_some(const void* src, size_t n) {
    n = std::min(n, free_space(n));
    copy_in(head_, src, n);
    head_ += n;
    return n;
  }
  // Bytes written but not yet published may be overwritten or dropped: the
  // consumer cannot see them. Lets a producer reserve room for a header it
  // fills in once the payload after it is complete.
  uint64_t write_position() const noexcept { return head_; }
  void overwrite(uint64_t position, const void* src, size_t n) noexcept { copy_in(position, src, n); }
  void rewind(uint64_t position) noexcept { head_ = position; }
  // Makes everything written so far visible; true when the consumer sleeps
  // and must be woken.
  bool publish() noexcept {
    h_->head.store(head_, std::memory_order_release);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return take_sleeper(h_->data_event);
  }

  // ---- consumer ----
  // Bytes published and not yet consumed (validated against the capacity).
  size_t readable() {
    uint64_t h = h_->head.load(std::memory_order_acquire);
    if (h - tail_ > cap_) throw RingCorrupt("response ring head out of range");
    head_ = h;
    return static_cast<size_t>(h - tail_);
  }
  // Copies n bytes starting `offset` past the tail; caller checked readable().
  void peek(void* dst, size_t n, size_t offset = 0) const noexcept { copy_out(tail_ + offset, dst, n); }
  // The n readable bytes starting `offset` past the tail, in place: in two
  // pieces where they wrap past the ring's end (else `second` is empty).
  // Caller checked readable().
  struct Pieces {
    std::span<const std::byte> first, second;
  };
  Pieces pieces(size_t offset, size_t n) const noexcept {
    size_t at = static_cast<size_t>((tail_ + offset) & mask_);
    size_t k = std::min(n, cap_ - at);
    return {{data_ + at, k}, {data_, n - k}};
  }
  // Frees n bytes; true when the producer waits for space and must be woken.
  bool consume(size_t n) noexcept {
    tail_ += n;
    h_->tail.store(tail_, std::memory_order_release);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return take_sleeper(h_->space_event);
  }

 private:
  // n == 0 returns before memcpy: an empty payload's pointer may be null,
  // and memcpy's arguments must not be, even for no bytes.
  void copy_in(uint64_t pos, const void* src, size_t n) noexcept {
    if (n == 0) return;
    size_t at = static_cast<size_t>(pos & mask_);
    size_t first = std::min(n, cap_ - at);
    std::memcpy(data_ + at, src, first);
    std::memcpy(data_, static_cast<const std::byte*>(src) + first, n - first);
  }
  void copy_out(uint64_t pos, void* dst, size_t n) const noexcept {
    if (n == 0) return;
    size_t at = static_cast<size_t>(pos & mask_);
    size_t first = std::min(n, cap_ - at);
    std::memcpy(dst, data_ + at, first);
    std::memcpy(static_cast<std::byte*>(dst) + first, data_, n - first);
  }

  RingHeader* h_ = nullptr;
  std::byte* data_ = nullptr;
  size_t cap_ = 0;
  uint64_t mask_ = 0;
  uint64_t head_ = 0;  // producer: next write position; consumer: last head seen
  uint64_t tail_ = 0;  // consumer: next read position; producer: cached tail
};

}  // namespace procpool::detail
