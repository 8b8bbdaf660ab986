// SPDX-License-Identifier: MIT
#pragma once
// The framing of a worker's response ring, apart from the pool's own state:
// which frames may follow which (Part, Dropped, Skipped, the frame that ends
// an answer), how long they may be, and how an answer that came in parts is
// put back together. PoolCore::drain_slot reads every worker's ring through
// read_responses, and fuzz/fuzz_response_reader.cpp drives the same function
// over a ring whose every byte, index and event word the fuzzer writes: so
// what is fuzzed is what the host runs.
#include <cstddef>
#include <span>
#include <string>

#include <procpool/common/archive.hpp>
#include <procpool/common/byte_ring.hpp>
#include <procpool/common/frame.hpp>

namespace procpool::detail {

// One worker's answer in progress between two drains (the pool's drain
// mutex guards it, in WorkerSlot).
struct AnswerAssembly {
  bool have_header = false;  // `header` is read, frame_left bytes of its payload are still to come
  FrameHeader header{};
  size_t frame_left = 0;
  bool parts = false;    // `partial` holds the Part frames of an answer whose last frame is still to come
  bool dropped = false;  // this answer's parts were dropped once already
  ByteBuffer partial;
  bool reading_answer() const noexcept { return have_header || parts; }
  void forget() noexcept {
    have_header = parts = dropped = false;
    partial = ByteBuffer();
  }
};

// What read_responses needs of the host: the calls the worker holds.
class AnswerTaker {
 public:
  // A frame of an answer to task h.task_id arrived: empty when that is the
  // call at the front of the worker's queue (for a frame that does not end
  // the answer, `ends` false, also a call whose frame is still being sent),
  // else why not. When `whole` (the answer is this one frame) the call is
  // taken off the queue at the same time.
  virtual std::string accept(const FrameHeader& h, bool ends, bool whole) = 0;
  // A whole answer: the header of its last frame with `length` the whole
  // payload's, which is `payload` then `rest`. `whole`: to the call accept()
  // took; else the call at the front, to be taken now. The bytes are valid
  // only during the call.
  virtual void settle(const FrameHeader& h, std::span<const std::byte> payload, std::span<const std::byte> rest,
                      bool whole) = 0;
  // The worker waits for space in the ring (its space_event asked for it).
  virtual void wake_producer() = 0;

 protected:
  ~AnswerTaker() = default;
};

// Reads the frames published in a worker's response `ring` until none is
// left: returns empty, or why the worker broke the protocol (it is then
// condemned, and the ring read no further). `dead`: the worker has died, and
// published bytes that stop inside a frame are not its fault. Throws
// RingCorrupt for a head out of range, and what the taker throws.
std::string read_responses(ByteRing& ring, AnswerAssembly& answer, size_t max_message_bytes, bool dead,
                           AnswerTaker& taker);

}  // namespace procpool::detail
