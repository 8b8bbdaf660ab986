// SPDX-License-Identifier: MIT
#pragma once
// Wire frames. Every message in a ring is a FrameHeader followed by
// `length` payload bytes; a payload longer than the ring streams through it
// (the producer writes as space frees up, the consumer reads as bytes come).
// A Call, CallMany or Value frame whose payload holds SharedBytes has
// `handles` descriptors travelling beside it (handle_channel.hpp).
//
//   host -> worker (request ring)
//     Call   payload: u32 function id, u64 signature fingerprint, cereal args
//     CallMany  payload: function id and fingerprint as Call, a cereal size
//            tag n, then n argument tuples: n calls of one function in one
//            frame (ProcessPool::map). Answered by one Value holding the n
//            results as a cereal vector (empty for void), or by the
//            Exception of the first call that threw (the rest do not run).
//     Stop   no payload: finish and exit cleanly
//   worker -> host (response ring)
//     Value      payload: cereal result (empty for void)
//     Exception  payload: an ExceptionRecord (exception_codec.hpp)
//     Skipped    no payload: the call was withdrawn (CancelList) before it ran
//     Part       payload: the next bytes of an answer larger than the free
//                space of the ring; the answer goes on in the frames after
//                it, and its last frame (Value or Exception) gives its kind
//     Dropped    no payload: forget the parts sent so far; the answer starts
//                again (its encoding failed after parts had gone out)
//
// The host checks every header from a worker before using it: the magic,
// a response kind, task_id equal to the oldest task in flight on that
// worker, length (with the parts before it) within max_message_bytes,
// handles only on a Value and at most kMaxHandlesPerFrame, and Dropped or a
// Skipped only where they can be.
#include <cstddef>
#include <cstdint>

namespace procpool::detail {

using TaskId = uint64_t;

inline constexpr uint32_t kFrameMagic = 0x50504632;  // "PPF2"

enum class FrameKind : uint16_t {
  Call = 1,
  Stop = 2,
  Value = 3,
  Exception = 4,
  Skipped = 5,
  CallMany = 6,
  Part = 7,
  Dropped = 8
};

struct FrameHeader {
  uint32_t magic;
  uint16_t kind;
  uint16_t handles;  // descriptors sent beside this frame
  TaskId task_id;
  uint64_t length;
};

// A Call whose `handles` has this bit set asks the worker to measure it:
// its answer's payload (Value or Exception) then ends with a UsageTrailer.
// The count of descriptors is the other bits.
inline constexpr uint16_t kMeasureUsage = 0x8000;
inline constexpr uint16_t handle_count(uint16_t handles) noexcept { return handles & ~kMeasureUsage; }

// What a measured call cost, as its worker saw it (untrusted: for reports
// only): wall and CPU time (the whole process, its threads included) in
// nanoseconds, and the peak resident memory during the call in bytes.
struct UsageTrailer {
  uint64_t wall_ns;
  uint64_t cpu_ns;
  uint64_t peak_rss_bytes;
};
static_assert(sizeof(UsageTrailer) == 24);

inline FrameHeader make_frame_header(FrameKind kind, TaskId task, uint64_t length, size_t handles = 0) noexcept {
  return {kFrameMagic, static_cast<uint16_t>(kind), static_cast<uint16_t>(handles), task, length};
}
static_assert(sizeof(FrameHeader) == 24 && alignof(FrameHeader) == 8);

// A worker publishes a Part when its ring is full, and then waits for a
// quarter of the ring to be free before it goes on; so every Part of an
// answer but the first (and the first after a Dropped) carries at least
// this many bytes. The host holds workers to it: with the sum of the parts
// capped by max_message_bytes, it bounds the frames one answer can take.
inline size_t min_later_part_bytes(size_t ring_capacity) noexcept {
  return ring_capacity / 4 > sizeof(FrameHeader) ? ring_capacity / 4 - sizeof(FrameHeader) : 1;
}

inline bool is_response(uint32_t kind) noexcept {
  switch (static_cast<FrameKind>(kind)) {
    case FrameKind::Value:
    case FrameKind::Exception:
    case FrameKind::Skipped:
    case FrameKind::Part:
    case FrameKind::Dropped:
      return true;
    default:
      return false;
  }
}

}  // namespace procpool::detail
