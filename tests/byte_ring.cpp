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
  // More than a SmallCopy holds: these are read from the data.
  static_assert(50 > kSmallCopyBytes);
  r.producer.write_some(b.data(), 50);
  r.producer.publish();
  REQUIRE(r.consumer.readable() == 50);
  ByteRing::Pieces all = r.consumer.pieces(0, 50);
  CHECK(all.first.size() == 4);    // 60..63
  CHECK(all.second.size() == 46);  // 0..45
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

namespace {
// Publishes n bytes 'a', 'b', ... then overwrites them in the data with
// 'X': what the consumer then reads says where it read it from.
void publish_then_spoil(LocalRing& r, size_t n, size_t at = 0) {
  std::vector<char> bytes(n);
  for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<char>('a' + i % 26);
  REQUIRE(r.producer.write_some(bytes.data(), n) == n);
  r.producer.publish();
  for (size_t i = 0; i < n; ++i) r.data[(at + i) % r.data.size()] = std::byte{'X'};
}
char first_byte_read(LocalRing& r) {
  char c = 0;
  r.consumer.peek(&c, 1);
  return c;
}
}  // namespace

TEST_CASE("ByteRing.ASmallPublishIsReadFromTheCopyBesideTheHead" * doctest::timeout(10)) {
  LocalRing r(64);
  publish_then_spoil(r, kSmallCopyBytes);
  REQUIRE(r.consumer.readable() == kSmallCopyBytes);
  CHECK(first_byte_read(r) == 'a');
  ByteRing::Pieces all = r.consumer.pieces(0, kSmallCopyBytes);
  REQUIRE(all.first.size() == kSmallCopyBytes);
  CHECK(all.second.empty());
  CHECK(static_cast<char>(all.first[kSmallCopyBytes - 1]) == static_cast<char>('a' + (kSmallCopyBytes - 1) % 26));
}

TEST_CASE("ByteRing.ALargerPublishIsReadFromTheData" * doctest::timeout(10)) {
  LocalRing r(64);
  publish_then_spoil(r, kSmallCopyBytes + 1);
  REQUIRE(r.consumer.readable() == kSmallCopyBytes + 1);
  CHECK(first_byte_read(r) == 'X');
}

// The copy is the worker's to write in a response ring: one that is being
// written, or that claims bytes not published or already consumed, is left
// for the data.
TEST_CASE("ByteRing.ACopyThatIsTornOrOutOfRangeIsNotUsed" * doctest::timeout(10)) {
  auto read_after = [](auto forge) {
    LocalRing r(64);
    publish_then_spoil(r, 8);
    forge(r.header.small);
    REQUIRE(r.consumer.readable() == 8);
    return first_byte_read(r);
  };
  CHECK(read_after([](SmallCopy&) {}) == 'a');  // as published
  CHECK(read_after([](SmallCopy& s) { s.seq.fetch_add(1); }) == 'X');
  CHECK(read_after([](SmallCopy& s) { s.len = 0; }) == 'X');
  CHECK(read_after([](SmallCopy& s) { s.len = kSmallCopyBytes + 1; }) == 'X');
  CHECK(read_after([](SmallCopy& s) { s.end = 9; }) == 'X');             // past the head
  CHECK(read_after([](SmallCopy& s) { s.len = 9; }) == 'X');             // begins before the tail
  CHECK(read_after([](SmallCopy& s) { s.end = ~uint64_t{0}; }) == 'X');  // far past, wrapping
}

TEST_CASE("ByteRing.APiecesSpanIntoTheCopyStaysValidUntilItsBytesAreConsumed" * doctest::timeout(10)) {
  LocalRing r(64);
  publish_then_spoil(r, 8);
  REQUIRE(r.consumer.readable() == 8);
  ByteRing::Pieces first = r.consumer.pieces(0, 8);
  publish_then_spoil(r, 8, 8);  // a second small publish while the first is read
  REQUIRE(r.consumer.readable() == 16);
  CHECK(static_cast<char>(first.first[0]) == 'a');  // the span still holds the first publish
  char second = 0;
  r.consumer.peek(&second, 1, 8);
  CHECK(second == 'X');  // not copied: the copy held unconsumed bytes when the head moved
  r.consumer.consume(16);
  publish_then_spoil(r, 8, 16);
  REQUIRE(r.consumer.readable() == 8);
  CHECK(first_byte_read(r) == 'a');  // consumed: the next small publish is copied again
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
