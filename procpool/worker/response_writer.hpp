// SPDX-License-Identifier: MIT
#pragma once
// Encodes a worker's response straight into the free space of its response
// ring, so a result is copied once, not encoded into a buffer and copied
// again. The frame header's place is reserved first and filled in when the
// payload's length is known; a response that fits is published whole by
// finish(), and can still be dropped (discard) if encoding fails half-way.
//
// A response larger than the ring's free space goes in parts: when the ring
// is full, what is written so far is published as a Part frame, the writer
// waits for the host to make room, and the encoding goes on in a new frame.
// The host appends parts until the frame that ends the answer (frame.hpp).
// A response dropped after parts went out is marked by a Dropped frame, so
// that the host forgets them.
//
// Past `max_bytes` of payload nothing more is written, only counted: the
// caller sees payload_size() over the limit and answers with the error.
#include <cstring>

#include <procpool/common/archive.hpp>
#include <procpool/common/byte_ring.hpp>
#include <procpool/common/event_word.hpp>
#include <procpool/common/frame.hpp>

namespace procpool::detail {

class ResponseWriter final : public ByteSink {
 public:
  // `doorbell` wakes the host when it sleeps (publishing says when).
  ResponseWriter(ByteRing& ring, TaskId task, size_t max_bytes, void (*doorbell)() noexcept) noexcept
      : ring_(ring), task_(task), max_bytes_(max_bytes), doorbell_(doorbell) {}

  // Starts the response: reserves its header.
  void begin() {
    published_ = 0;
    counted_ = 0;
    start_frame();
  }

  void write(const void* data, size_t size) override {
    if (counted_ > 0 || payload_size() + size > max_bytes_) {
      counted_ += size;  // over the limit: the caller answers with that instead
      return;
    }
    const auto* from = static_cast<const std::byte*>(data);
    for (;;) {
      size_t k = ring_.write_some(from, size);
      from += k;
      size -= k;
      if (size == 0) return;
      // The ring is full: send what this frame holds, wait for the host to
      // take some, go on in a new frame. Waiting for a quarter of the ring
      // keeps parts large (a header per part, a wake-up per part), as the
      // host requires (min_later_part_bytes). A frame that holds nothing
      // yet waits and goes on as it is.
      size_t room = min_later_part_bytes(ring_.capacity()) + sizeof(FrameHeader);
      if (frame_bytes() == 0) {
        wait_for_room(room);
        continue;
      }
      publish_frame(FrameKind::Part);
      wait_for_room(room);
      start_frame();
    }
  }

  // Payload bytes of the response so far: published parts and this frame.
  size_t payload_size() const noexcept { return published_ + frame_bytes() + counted_; }

  // Drops everything written since begin() and begins again.
  void discard() {
    ring_.rewind(start_);
    if (published_ > 0) {
      // In the place of the current frame's header, which was reserved.
      FrameHeader dropped = make_frame_header(FrameKind::Dropped, task_, 0);
      ring_.write_some(&dropped, sizeof dropped);
      publish();
    }
    begin();
  }

  // Fills in the header of the frame that ends the response and publishes it.
  void finish(FrameKind kind, size_t handles) {
    FrameHeader header = make_frame_header(kind, task_, frame_bytes(), handles);
    ring_.overwrite(start_, &header, sizeof header);
    publish();
  }

 private:
  size_t frame_bytes() const noexcept {
    return static_cast<size_t>(ring_.write_position() - start_) - sizeof(FrameHeader);
  }
  void start_frame() {
    wait_for_room(sizeof(FrameHeader));
    start_ = ring_.write_position();
    FrameHeader blank{};
    ring_.write_some(&blank, sizeof blank);
  }
  void publish_frame(FrameKind kind) {
    size_t n = frame_bytes();
    FrameHeader header = make_frame_header(kind, task_, n);
    ring_.overwrite(start_, &header, sizeof header);
    published_ += n;
    publish();
  }
  void publish() {
    if (ring_.publish()) doorbell_();
  }
  // The host frees space as it reads; it wakes this side if it sleeps.
  void wait_for_room(size_t bytes) {
    sleep_until(ring_.header().space_event, [&] { return ring_.free_space(bytes) >= bytes; });
  }

  ByteRing& ring_;
  TaskId task_;
  size_t max_bytes_;
  void (*doorbell_)() noexcept;
  uint64_t start_ = 0;    // where the current frame's header is
  size_t published_ = 0;  // payload bytes sent in Part frames
  size_t counted_ = 0;    // payload bytes past max_bytes, not written
};

}  // namespace procpool::detail
