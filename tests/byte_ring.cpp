// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <numeric>
#include <vector>

#include <procpool/common/byte_ring.hpp>
#include <procpool/common/worker_segment.hpp>

#include "support/local_ring.hpp"

using namespace procpool::detail;

TEST_CASE("ByteRing.BytesSurviveWrappingAround" * doctest::timeout(10)) {
  LocalRing r(64);
  unsigned char next_in = 0, next_out = 0;
  for (int round = 0; round < 100; ++round) {
    unsigned char chunk[40];
    for (auto& c : chunk) c = next_in++;
    REQUIRE(r.producer.write_some(chunk, sizeof chunk) == sizeof chunk);
    r.producer.publish();
    REQUIRE(r.consumer.readable() == sizeof chunk);
    unsigned char out[40];
    r.consumer.peek(out, sizeof out);
    r.consumer.consume(sizeof out);
    for (unsigned char c : out) REQUIRE(c == next_out++);
  }
}

TEST_CASE("ByteRing.WriteSomeStopsAtCapacity" * doctest::timeout(10)) {
  LocalRing r(64);
  std::vector<std::byte> big(100);
  CHECK(r.producer.write_some(big.data(), big.size()) == 64);
  CHECK(r.producer.write_some(big.data(), 1) == 0);
  r.producer.publish();
  r.consumer.readable();
  r.consumer.consume(10);
  CHECK(r.producer.write_some(big.data(), big.size()) == 10);
}

TEST_CASE("ByteRing.BytesThatWrapPastTheEndComeInTwoPieces" * doctest::timeout(10)) {
  LocalRing r(64);
  std::vector<std::byte> b(60);
  r.producer.write_some(b.data(), 60);
  r.producer.publish();
  r.consumer.readable();
  r.consumer.consume(60);
  r.producer.write_some(b.data(), 10);
  r.producer.publish();
  REQUIRE(r.consumer.readable() == 10);
  ByteRing::Pieces all = r.consumer.pieces(0, 10);
  CHECK(all.first.size() == 4);   // 60..63
  CHECK(all.second.size() == 6);  // 0..5
  CHECK(all.second.data() + 60 == all.first.data());
  ByteRing::Pieces head = r.consumer.pieces(1, 3);
  CHECK(head.first.size() == 3);
  CHECK(head.second.empty());
  ByteRing::Pieces tail = r.consumer.pieces(5, 5);
  CHECK(tail.first.size() == 5);  // all past the end: one piece, from the start
  CHECK(tail.first.data() == all.second.data() + 1);
  CHECK(tail.second.empty());
}

TEST_CASE("ByteRing.ForgedHeadIsRejected" * doctest::timeout(10)) {
  LocalRing r(64);
  r.header.head.store(65);  // more than a ring's worth unread
  CHECK_THROWS_AS(r.consumer.readable(), RingCorrupt);
  r.header.head.store(~uint64_t{0});  // behind the tail
  CHECK_THROWS_AS(r.consumer.readable(), RingCorrupt);
}

TEST_CASE("ByteRing.ForgedTailIsRejected" * doctest::timeout(10)) {
  LocalRing r(64);
  std::vector<std::byte> b(64);
  r.producer.write_some(b.data(), 64);
  r.header.tail.store(1000);  // ahead of the head
  CHECK_THROWS_AS(r.producer.write_some(b.data(), 1), RingCorrupt);
}

TEST_CASE("ByteRing.PublishReportsASleepingConsumerOnce" * doctest::timeout(10)) {
  LocalRing r(64);
  char c = 'x';
  r.producer.write_some(&c, 1);
  CHECK_FALSE(r.producer.publish());
  announce_sleep(r.header.data_event);
  r.producer.write_some(&c, 1);
  CHECK(r.producer.publish());
  r.producer.write_some(&c, 1);
  CHECK_FALSE(r.producer.publish());
}

TEST_CASE("ByteRing.ConsumeReportsAWaitingProducer" * doctest::timeout(10)) {
  LocalRing r(64);
  char c = 'x';
  r.producer.write_some(&c, 1);
  r.producer.publish();
  r.consumer.readable();
  announce_sleep(r.header.space_event);
  CHECK(r.consumer.consume(1));
}

// A child process streams 16 MiB through a 4 KiB ring, sleeping on the
// futex words whenever it must wait: checks the cross-process protocol.
TEST_CASE("ByteRing.StreamsAcrossProcessesWithFutexSleeps" * doctest::timeout(60)) {
  WorkerSegment seg(4096);
  constexpr size_t kTotal = size_t{16} << 20;
  REQUIRE(seg.inherit_on_fork(true));
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ByteRing out = seg.response_ring();
    std::vector<unsigned char> chunk(1000);
    size_t sent = 0;
    while (sent < kTotal) {
      size_t n = std::min(chunk.size(), kTotal - sent);
      for (size_t i = 0; i < n; ++i) chunk[i] = static_cast<unsigned char>((sent + i) * 31 + 7);
      size_t off = 0;
      while (off < n) {
        size_t k = out.write_some(chunk.data() + off, n - off);
        off += k;
        if (k && out.publish()) futex_wake_all(seg.header().response.data_event);
        if (off < n && k == 0) {
          uint32_t w = announce_sleep(seg.header().response.space_event);
          if (out.free_space(1) > 0) withdraw_sleep(seg.header().response.space_event);
          else futex_wait(seg.header().response.space_event, w, nullptr);
        }
      }
      sent += n;
    }
    _exit(0);
  }
  ByteRing in = seg.response_ring();
  size_t got = 0;
  bool intact = true;
  while (got < kTotal) {
    size_t avail = in.readable();
    if (avail == 0) {
      uint32_t w = announce_sleep(seg.header().response.data_event);
      if (in.readable() > 0) withdraw_sleep(seg.header().response.data_event);
      else futex_wait(seg.header().response.data_event, w, nullptr);
      continue;
    }
    std::vector<unsigned char> buf(avail);
    in.peek(buf.data(), avail);
    for (size_t i = 0; i < avail; ++i) intact &= buf[i] == static_cast<unsigned char>((got + i) * 31 + 7);
    got += avail;
    if (in.consume(avail)) futex_wake_all(seg.header().response.space_event);
  }
  int status = 0;
  waitpid(child, &status, 0);
  CHECK(intact);
  CHECK(got == kTotal);
  CHECK(WIFEXITED(status));
}
