// SPDX-License-Identifier: MIT
#pragma once
// A lock-free single-producer single-consumer ring of bytes in shared memory.
//
// Layout (RingHeader, then `capacity` data bytes, capacity a power of two):
//   head         producer-owned: total bytes ever published; its line also
//                holds SmallCopy, the last publish's bytes when they were few
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
// SmallCopy: a consumer must load the head's line to learn that bytes came,
// and then the data's line to read them, one miss after the other. When a
// publish adds at most kSmallCopyBytes (a no-op's call or its answer), the
// producer also copies those bytes into the rest of the head's line, so the
// consumer finds them in the line it loaded (hot round trip: 0.58-0.59 ->
// 0.51-0.52 µs). It is a seqlock the producer alone writes:
//   producer: seq.store(odd, relaxed); fence(release); len, end and the
//             words, relaxed; seq.store(even, release); then head (release)
//   consumer: seq.load(acquire); len, end, words relaxed; fence(acquire);
//             seq.load(relaxed) unchanged and even: a copy of one publish
// Release/acquire on seq order the words against the seq loads that bracket
// them, so an unchanged even seq means no store of the words was seen from
// another round. The copy is of bytes also in the data, which do not change
// until they are consumed: a copy of [end - len, end) taken while its bytes
// are unconsumed stays right until then. The consumer keeps one copy (taken
// when the head moves and its last copy is consumed) and serves peek() and
// pieces() from it when they ask for bytes wholly inside it; anything else
// comes from the data. A forged copy (a hostile worker) is bounds-checked
// like the head and is no more trusted than the data bytes it stands for.
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

// The bytes of a small publish, beside the head (see SmallCopy above).
inline constexpr size_t kSmallCopyWords = 5;
inline constexpr size_t kSmallCopyBytes = kSmallCopyWords * sizeof(uint64_t);
struct SmallCopy {
  std::atomic<uint32_t> seq{0};  // odd while the producer writes
  std::atomic<uint32_t> len{0};  // bytes in `words`, 1..kSmallCopyBytes (0: none yet)
  std::atomic<uint64_t> end{0};  // the head those bytes end at
  std::atomic<uint64_t> words[kSmallCopyWords]{};
};

struct RingHeader {
  alignas(kCacheLine) std::atomic<uint64_t> head{0};
  SmallCopy small;
  alignas(kCacheLine) std::atomic<uint64_t> tail{0};
  alignas(kCacheLine) std::atomic<uint32_t> data_event{0};
  alignas(kCacheLine) std::atomic<uint32_t> space_event{0};
};
static_assert(std::atomic<uint64_t>::is_always_lock_free, "ring indices must be lock-free to be shared");
static_assert(std::is_standard_layout_v<RingHeader>, "RingHeader lives in shared memory");
static_assert(offsetof(RingHeader, tail) - offsetof(RingHeader, head) >= kCacheLine, "head and tail share a line");
static_assert(sizeof(RingHeader) == 4 * kCacheLine);
static_assert(offsetof(RingHeader, small) + sizeof(SmallCopy) <= kCacheLine, "SmallCopy must share the head's line");

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
        head_(header->head.load(std::memory_order_relaxed)), tail_(header->tail.load(std::memory_order_relaxed)),
        published_(head_), small_seq_(header->small.seq.load(std::memory_order_relaxed) & ~1U) {}

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
    if (auto n = static_cast<size_t>(head_ - published_); n > 0 && n <= kSmallCopyBytes) copy_small(n);
    published_ = head_;
    h_->head.store(head_, std::memory_order_release);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return take_sleeper(h_->data_event);
  }

  // ---- consumer ----
  // Bytes published and not yet consumed (validated against the capacity).
  size_t readable() {
    uint64_t h = h_->head.load(std::memory_order_acquire);
    if (h - tail_ > cap_) throw RingCorrupt("response ring head out of range");
    // A new copy only once the last one is consumed: pieces() may have
    // handed out spans into it.
    if (h != head_ && tail_ >= small_end_) take_small(h);
    head_ = h;
    return static_cast<size_t>(h - tail_);
  }
  // Copies n bytes starting `offset` past the tail; caller checked readable().
  void peek(void* dst, size_t n, size_t offset = 0) const noexcept {
    if (const std::byte* small = in_small(tail_ + offset, n)) {
      std::memcpy(dst, small, n);
      return;
    }
    copy_out(tail_ + offset, dst, n);
  }
  // The n readable bytes starting `offset` past the tail, in place: in two
  // pieces where they wrap past the ring's end (else `second` is empty), or
  // in one from the consumer's SmallCopy, valid until they are consumed.
  // Caller checked readable().
  struct Pieces {
    std::span<const std::byte> first, second;
  };
  Pieces pieces(size_t offset, size_t n) const noexcept {
    if (const std::byte* small = in_small(tail_ + offset, n)) return {{small, n}, {}};
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
  void copy_small(size_t n) noexcept {
    uint64_t words[kSmallCopyWords] = {};
    copy_out(published_, words, n);  // just written: in this CPU's cache
    SmallCopy& s = h_->small;
    s.seq.store(small_seq_ + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    s.len.store(static_cast<uint32_t>(n), std::memory_order_relaxed);
    s.end.store(head_, std::memory_order_relaxed);
    for (size_t i = 0; i < (n + sizeof(uint64_t) - 1) / sizeof(uint64_t); ++i)
      s.words[i].store(words[i], std::memory_order_relaxed);
    small_seq_ += 2;
    s.seq.store(small_seq_, std::memory_order_release);
  }
  // Takes the SmallCopy if it is whole and of unconsumed bytes published by `h`.
  void take_small(uint64_t h) noexcept {
    const SmallCopy& s = h_->small;
    uint32_t seq = s.seq.load(std::memory_order_acquire);
    if (seq & 1) return;
    uint32_t len = s.len.load(std::memory_order_relaxed);
    uint64_t end = s.end.load(std::memory_order_relaxed);
    uint64_t words[kSmallCopyWords];
    for (size_t i = 0; i < kSmallCopyWords; ++i) words[i] = s.words[i].load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s.seq.load(std::memory_order_relaxed) != seq) return;  // torn: the producer wrote meanwhile
    // Within what `h` published and not yet consumed (h - tail_ <= cap_ was checked).
    if (len == 0 || len > kSmallCopyBytes || end - tail_ > h - tail_ || end - tail_ < len) return;
    std::memcpy(small_, words, len);
    small_begin_ = end - len;
    small_end_ = end;
  }
  // The n bytes at position `at` in the consumer's copy, or null.
  const std::byte* in_small(uint64_t at, size_t n) const noexcept {
    if (at < small_begin_ || at > small_end_ || n > small_end_ - at) return nullptr;
    return small_ + (at - small_begin_);
  }
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
  // Producer: the head last published, and the SmallCopy's last even seq.
  uint64_t published_ = 0;
  uint32_t small_seq_ = 0;
  // Consumer: its copy of the bytes [small_begin_, small_end_).
  uint64_t small_begin_ = 0, small_end_ = 0;
  std::byte small_[kSmallCopyBytes]{};
};

}  // namespace procpool::detail
