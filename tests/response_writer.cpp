// SPDX-License-Identifier: MIT
// The worker's ResponseWriter: answers encoded straight into the response
// ring, in Part frames when they outgrow its free space. A thread stands in
// for the host, reading frames the way it does.
#include <doctest/doctest.h>

#include <algorithm>
#include <thread>
#include <vector>

#include <procpool/common/byte_ring.hpp>
#include <procpool/common/event_word.hpp>
#include <procpool/common/frame.hpp>
#include <procpool/worker/response_writer.hpp>

#include "support/local_ring.hpp"

using namespace procpool::detail;

namespace {
void no_doorbell() noexcept {}

struct Frame {
  FrameHeader header;
  std::vector<std::byte> payload;
};

// Reads n bytes as the host does, freeing the space and waking the writer.
void read(LocalRing& r, void* to, size_t n) {
  auto* at = static_cast<std::byte*>(to);
  while (n > 0) {
    size_t k = std::min(n, r.consumer.readable());
    if (k == 0) {
      std::this_thread::yield();
      continue;
    }
    r.consumer.peek(at, k);
    if (r.consumer.consume(k)) futex_wake_all(r.header.space_event);
    at += k;
    n -= k;
  }
}
// Reads whole frames, until one that ends an answer.
std::vector<Frame> read_answer(LocalRing& r) {
  std::vector<Frame> frames;
  for (;;) {
    Frame f;
    read(r, &f.header, sizeof f.header);
    f.payload.resize(static_cast<size_t>(f.header.length));
    read(r, f.payload.data(), f.payload.size());
    frames.push_back(f);
    auto kind = static_cast<FrameKind>(f.header.kind);
    if (f.header.magic != kFrameMagic || (kind != FrameKind::Part && kind != FrameKind::Dropped)) return frames;
  }
}
}  // namespace

TEST_CASE("ResponseWriter.AnAnswerThatFitsIsOneFrame" * doctest::timeout(10)) {
  LocalRing r(4096);
  ResponseWriter writer(r.producer, 7, 1 << 20, &no_doorbell);
  writer.begin();
  std::vector<std::byte> payload(1000, std::byte{0x42});
  writer.write(payload.data(), payload.size());
  writer.finish(FrameKind::Value, 0);
  std::vector<Frame> frames = read_answer(r);
  REQUIRE(frames.size() == 1);
  CHECK(frames[0].header.kind == static_cast<uint16_t>(FrameKind::Value));
  CHECK(frames[0].header.task_id == 7);
  CHECK(frames[0].payload == payload);
}

TEST_CASE("ResponseWriter.ALargerAnswerGoesInPartsOfAQuarterRingOrMoreButTheFirst" * doctest::timeout(10)) {
  LocalRing r(4096);
  std::vector<std::byte> filler(4000);  // the host has yet to read an earlier answer
  r.producer.write_some(filler.data(), filler.size());
  r.producer.publish();
  std::vector<std::byte> payload(50000);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<std::byte>(i * 31);
  std::vector<Frame> frames;
  std::thread host([&] {
    // Not before the writer waits for room, with one part out.
    while (!(r.header.space_event.load() & kSleeperBit)) std::this_thread::yield();
    std::vector<std::byte> earlier(filler.size());
    read(r, earlier.data(), earlier.size());
    frames = read_answer(r);
  });
  ResponseWriter writer(r.producer, 9, 1 << 20, &no_doorbell);
  writer.begin();
  for (size_t at = 0; at < payload.size(); at += 1000) writer.write(payload.data() + at, 1000);
  CHECK(writer.payload_size() == payload.size());
  writer.finish(FrameKind::Value, 0);
  host.join();
  REQUIRE(frames.size() > 2);
  std::vector<std::byte> whole;
  for (size_t i = 0; i < frames.size(); ++i) {
    CAPTURE(i);
    CHECK(frames[i].header.magic == kFrameMagic);
    CHECK(frames[i].header.task_id == 9);
    bool last = i + 1 == frames.size();
    CHECK(frames[i].header.kind == static_cast<uint16_t>(last ? FrameKind::Value : FrameKind::Part));
    if (i > 0 && !last) CHECK(frames[i].payload.size() >= min_later_part_bytes(4096));
    whole.insert(whole.end(), frames[i].payload.begin(), frames[i].payload.end());
  }
  CHECK(frames[0].payload.size() == 4096 - 4000 - sizeof(FrameHeader));  // the first part: what was free
  CHECK(whole == payload);
}

TEST_CASE("ResponseWriter.AFrameBegunWithRoomForItsHeaderOnlyWaitsAndStaysOneFrame" * doctest::timeout(10)) {
  LocalRing r(256);
  std::vector<std::byte> filler(232);  // leaves exactly a header's room
  r.producer.write_some(filler.data(), filler.size());
  r.producer.publish();
  std::vector<Frame> frames;
  std::thread host([&] {
    while (!(r.header.space_event.load() & kSleeperBit)) std::this_thread::yield();  // the writer waits
    std::vector<std::byte> earlier(filler.size());
    read(r, earlier.data(), earlier.size());
    frames = read_answer(r);
  });
  ResponseWriter writer(r.producer, 7, 1 << 20, &no_doorbell);
  writer.begin();
  std::vector<std::byte> payload(100, std::byte{0x42});
  writer.write(payload.data(), payload.size());
  writer.finish(FrameKind::Value, 0);
  host.join();
  REQUIRE(frames.size() == 1);
  CHECK(frames[0].header.magic == kFrameMagic);
  CHECK(frames[0].payload == payload);
}

TEST_CASE("ResponseWriter.DiscardingAfterPartsWentOutSendsDropped" * doctest::timeout(10)) {
  LocalRing r(4096);
  std::vector<Frame> frames;
  std::thread host([&] { frames = read_answer(r); });
  ResponseWriter writer(r.producer, 3, 1 << 20, &no_doorbell);
  writer.begin();
  std::vector<std::byte> payload(10000, std::byte{1});
  writer.write(payload.data(), payload.size());
  writer.discard();
  CHECK(writer.payload_size() == 0);
  writer.write("no", 2);
  writer.finish(FrameKind::Exception, 0);
  host.join();
  REQUIRE(frames.size() >= 3);
  CHECK(frames[frames.size() - 2].header.kind == static_cast<uint16_t>(FrameKind::Dropped));
  CHECK(frames.back().header.kind == static_cast<uint16_t>(FrameKind::Exception));
  CHECK(frames.back().payload.size() == 2);
}

TEST_CASE("ResponseWriter.PastTheLimitItOnlyCounts" * doctest::timeout(10)) {
  LocalRing r(4096);
  ResponseWriter writer(r.producer, 3, 3000, &no_doorbell);
  writer.begin();
  std::vector<std::byte> payload(2000);
  writer.write(payload.data(), payload.size());
  writer.write(payload.data(), payload.size());  // would take it to 4000
  writer.write(payload.data(), payload.size());
  CHECK(writer.payload_size() == 6000);
  CHECK(r.consumer.readable() == 0);  // nothing went out: the caller answers with the limit instead
}
