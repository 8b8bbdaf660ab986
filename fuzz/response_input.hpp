// SPDX-License-Identifier: MIT
#pragma once
// The input of fuzz_response_reader: a Setup (the ring, the limits, the
// calls the worker holds), then what the worker publishes, as units of
// { uint16_t length; bytes }, each one store of the ring's head. With
// kForgedCopy, each unit is followed by a forged SmallCopy beside the head:
// { uint8_t len; uint8_t back (its end is the head minus this); uint8_t
// torn (odd: the seq is left odd); bytes[kSmallCopyBytes] }.
#include <cstddef>
#include <cstdint>

namespace procpool::fuzz {

struct ResponseSetup {
  uint8_t ring_log2;     // capacity 64 << (ring_log2 % 7): 64 B to 4 KiB
  uint8_t flags;         // the k* bits below
  uint8_t result;        // the result type the calls expect: kResultTypes[result % kResultTypeCount]
  uint8_t copy;          // kHonestCopy, kForgedCopy: what the SmallCopy beside the head holds (0: nothing)
  uint32_t max_message;  // max_message_bytes; kNoLimit: SIZE_MAX
  uint64_t tail;         // where the ring's head and tail both start
  uint64_t first_task;   // the task id of the call at the front of the worker's queue; the next ones follow
  uint64_t head_skew;    // added to the head once everything is published (0: none)
  uint32_t space_event;  // the ring's space_event word at the start
  uint32_t spare2;
};
static_assert(sizeof(ResponseSetup) == 40);

inline constexpr uint32_t kNoLimit = 0xFFFFFFFF;
inline constexpr uint8_t kDead = 1;             // the worker has died (drain_slot's `dead`)
inline constexpr uint8_t kMeasured = 2;         // the calls were measured: answers end with a UsageTrailer
inline constexpr uint8_t kWithdrawn = 4;        // the calls were withdrawn (a Skipped answer is allowed)
inline constexpr uint8_t kIdle = 8;             // no call is wholly sent to the worker
inline constexpr uint8_t kArriving = 16;        // ...but the front one's header is (a map chunk streaming in)
inline constexpr uint8_t kProducerSleeps = 32;  // the worker waits for space before every read

// ResponseSetup::copy
inline constexpr uint8_t kHonestCopy = 1;  // a unit of at most kSmallCopyBytes is copied, as ByteRing::publish does
inline constexpr uint8_t kForgedCopy = 2;  // the input says what the copy holds (after each unit)

// The result types, in the order of ResponseSetup::result.
enum ResultType : uint8_t {
  kVoid,
  kInt,
  kString,
  kStrings,
  kMap,
  kTuple,
  kSharedBytes,
  kSharedBytesVector,
  kChunk,
  kOutcomeChunk,
  kBytes,
  kResultTypeCount
};
inline constexpr size_t kChunkCalls = 3;  // the calls of a kChunk or kOutcomeChunk answer

}  // namespace procpool::fuzz
