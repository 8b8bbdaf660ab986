// SPDX-License-Identifier: MIT
#include <procpool/loop/response_stream.hpp>

namespace procpool::detail {

// A worker publishes whole frames only (ResponseWriter: a frame's header
// and payload go out with one store of `head`), so every head the host
// reads ends on a frame boundary. Published bytes that end inside a header
// or a payload are no frame in progress: they are all that will come, and
// waiting for the rest would keep the call pending for ever. A worker that
// died meanwhile (`dead`) is not condemned for it: its death says why.
std::string read_responses(ByteRing& ring, AnswerAssembly& answer, size_t max_message_bytes, bool dead,
                           AnswerTaker& taker) {
  auto consume = [&](size_t n) {
    if (ring.consume(n)) taker.wake_producer();
  };
  for (;;) {
    size_t avail = ring.readable();
    if (!answer.have_header) {
      if (avail == 0 || (dead && avail < sizeof(FrameHeader))) return {};
      if (avail < sizeof(FrameHeader))
        return "it published " + std::to_string(avail) + " bytes, less than a frame header";
      FrameHeader h;
      ring.peek(&h, sizeof h);
      if (h.magic != kFrameMagic) return "it wrote a response frame with a bad magic number";
      if (!is_response(h.kind)) return "it wrote a frame of unknown kind " + std::to_string(h.kind);
      size_t before = answer.parts ? answer.partial.size() : 0;  // at most max_message_bytes: checked as it came
      if (h.length > max_message_bytes - before)
        return "it wrote a response of " + std::to_string(before + h.length) + " bytes, over max_message_bytes";
      if (h.handles > 0 && (h.kind != static_cast<uint32_t>(FrameKind::Value) || h.handles > kMaxHandlesPerFrame))
        return "it wrote a frame claiming " + std::to_string(h.handles) + " shared buffers";
      bool part = h.kind == static_cast<uint32_t>(FrameKind::Part);
      bool dropped = h.kind == static_cast<uint32_t>(FrameKind::Dropped);
      // Each part but the first is large, and parts are dropped at most
      // once an answer: a worker cannot keep the host reading frames that
      // add nothing (with max_message_bytes, this bounds an answer's frames).
      if (part && h.length < (answer.parts ? min_later_part_bytes(ring.capacity()) : 1))
        return "it wrote a Part frame of only " + std::to_string(h.length) + " bytes";
      if (dropped && (!answer.parts || h.length != 0))
        return "it wrote a Dropped frame with no parts of an answer to drop";
      if (dropped && answer.dropped) return "it dropped the parts of one answer twice";
      if (answer.parts && h.kind == static_cast<uint32_t>(FrameKind::Skipped))
        return "it wrote a Skipped answer after parts of one";
      // Compared with what is left after the header, not as header plus
      // length: with max_message_bytes SIZE_MAX a length near 2^64 made that
      // sum wrap to a few bytes, and the payload was read far past the ring
      // (found by fuzz_response_reader).
      if (h.length > avail - sizeof h) {
        if (dead) return {};
        return "it published a frame header announcing " + std::to_string(h.length) + " bytes, but only " +
               std::to_string(avail - sizeof h) + " of them";
      }
      size_t whole = sizeof h + static_cast<size_t>(h.length);  // at most avail
      bool ends = !part && !dropped;
      bool in_place = ends && !answer.parts;  // decoded where it lies, in two pieces if it wraps
      if (std::string mismatch = taker.accept(h, ends, in_place); !mismatch.empty()) return mismatch;
      if (ends) answer.dropped = false;  // the next answer may drop its parts once again
      if (in_place) {
        // An answer that did not need the large buffer: give it back, as
        // a worker does its own (large answers no longer come in a row).
        if (answer.partial.capacity() > ring.capacity()) answer.partial = ByteBuffer();
        ByteRing::Pieces payload = ring.pieces(sizeof h, static_cast<size_t>(h.length));
        taker.settle(h, payload.first, payload.second, true);
        consume(whole);
        continue;
      }
      consume(sizeof h);
      if (dropped) {
        answer.parts = false;
        answer.dropped = true;
        continue;
      }
      // The answer is reassembled in `partial`, which grows as bytes
      // arrive: the length is the worker's word.
      if (!answer.parts) answer.partial.clear();
      answer.header = h;
      answer.have_header = true;
      answer.frame_left = static_cast<size_t>(h.length);
      continue;
    }
    // A frame of an answer that comes in parts: appended to the others
    // (it is whole in the ring, as every frame is).
    size_t k = answer.frame_left;
    if (k > 0) {
      ring.peek(answer.partial.grow(k), k);
      consume(k);
      answer.frame_left = 0;
    }
    answer.have_header = false;
    answer.parts = answer.header.kind == static_cast<uint32_t>(FrameKind::Part);
    if (answer.parts) continue;       // more of it follows
    FrameHeader all = answer.header;  // this frame's kind and handles, every part's bytes
    all.length = answer.partial.size();
    taker.settle(all, {answer.partial.data(), answer.partial.size()}, {}, false);
  }
}

}  // namespace procpool::detail
