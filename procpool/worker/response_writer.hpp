// SPDX-License-Identifier: MIT
#pragma once
// Encodes a worker's response straight into the free space of its response
// ring, so a result is copied once, not encoded into a buffer and copied
// again. Nothing is published until finish(): the frame header's place is
// reserved first and filled in when the payload's length is known, and a
// response can still be dropped (discard) if encoding fails half-way. What
// does not fit in the ring now spills into a buffer that finish() streams
// through the ring after publishing the part already there.
#include <cstring>

#include <procpool/common/archive.hpp>
#include <procpool/common/byte_ring.hpp>
#include <procpool/common/frame.hpp>

namespace procpool::detail {

class ResponseWriter final : public ByteSink {
 public:
  ResponseWriter(ByteRing& ring, ByteBuffer& spill) noexcept : ring_(ring), spill_(spill) {}

  // Starts a frame: reserves its header.
  void begin() {
    start_ = ring_.write_position();
    spill_.clear();
    FrameHeader blank{};
    header_in_ring_ = ring_.free_space(sizeof blank) >= sizeof blank;
    spilling_ = !header_in_ring_;
    if (header_in_ring_) ring_.write_some(&blank, sizeof blank);
    else spill_.append(&blank, sizeof blank);
  }

  void write(const void* data, size_t size) override {
    if (!spilling_) {
      size_t k = ring_.write_some(data, size);
      if (k == size) return;
      spilling_ = true;
      data = static_cast<const std::byte*>(data) + k;
      size -= k;
    }
    spill_.append(data, size);
  }

  size_t payload_size() const noexcept {
    return static_cast<size_t>(ring_.write_position() - start_) + spill_.size() - sizeof(FrameHeader);
  }

  // Drops everything written since begin() and begins again.
  void discard() {
    ring_.rewind(start_);
    begin();
  }

  // Fills in the header and publishes; returns the spilled bytes still to be
  // streamed (the caller writes them as ring space frees up) and whether the
  // consumer must be woken for what was published.
  struct Rest {
    const std::byte* data;
    size_t size;
    bool wake;
  };
  Rest finish(FrameKind kind, TaskId task, size_t handles) noexcept {
    FrameHeader header = make_frame_header(kind, task, payload_size(), handles);
    if (header_in_ring_) ring_.overwrite(start_, &header, sizeof header);
    else std::memcpy(spill_.data(), &header, sizeof header);
    bool wake = ring_.write_position() != start_ && ring_.publish();
    return {spill_.data(), spill_.size(), wake};
  }

 private:
  ByteRing& ring_;
  ByteBuffer& spill_;
  uint64_t start_ = 0;
  bool header_in_ring_ = false;
  bool spilling_ = false;
};

}  // namespace procpool::detail
