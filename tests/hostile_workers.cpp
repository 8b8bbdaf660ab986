// SPDX-License-Identifier: MIT
// Black-box hostile workers: a task that attacks its own worker's shared
// memory (scribbles over all of it, moves ring indices, changes a length
// while the host reads it, floods its ring). Whatever it does, only its own
// call fails, soon, the worker is replaced, the other worker's calls go on
// unharmed, and the host returns to idle with its memory bounded.
#include <doctest/doctest.h>

#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <procpool/common/frame.hpp>
#include <procpool/procpool.hpp>
#include <procpool/worker/worker_loop.hpp>

#include "support/census.hpp"
#include "support/task_functions.hpp"

namespace {

using namespace std::chrono_literals;

// Attacks this worker's segment as `how` says, rings the host's doorbell,
// and goes on running (a hostile worker does not politely die), but for
// flip_length, whose answer may be taken as valid and which then leaves.
int attack_own_segment(std::string how, unsigned seed) {
  using namespace procpool::detail;
  WorkerSegment* seg = current_worker_segment();
  if (!seg) return -1;
  auto* base = reinterpret_cast<unsigned char*>(&seg->header());
  size_t bytes = WorkerSegment::bytes_for(seg->capacity());
  RingHeader& response = seg->header().response;
  uint64_t cap = seg->capacity();
  TaskId task = seg->control().running_task.load();
  if (how == "random") {
    std::mt19937_64 rng(seed);
    for (size_t i = 0; i + 8 <= bytes; i += 8) {
      uint64_t v = rng();
      std::memcpy(base + i, &v, 8);
    }
  } else if (how == "ones" || how == "zeros") {
    std::memset(base, how == "ones" ? 0xFF : 0, bytes);
  } else if (how == "head_backwards") {
    response.head.store(response.head.load() - 64);
  } else if (how == "head_past_capacity") {
    response.head.store(response.head.load() + 2 * cap);
  } else if (how == "flip_length") {
    // A complete answer (the int 7), whose length word then flips between
    // its true value and one far past max_message_bytes while the host
    // reads it; then the worker leaves. Read once, either value is fine:
    // the answer, or a ProtocolError. Read twice, it is a hole.
    ByteRing ring = seg->response_ring();
    int value = 7;
    FrameHeader h = make_frame_header(FrameKind::Value, task, sizeof value);
    uint64_t at = ring.write_position();
    ring.write_some(&h, sizeof h);
    ring.write_some(&value, sizeof value);
    auto* data = base + sizeof(SegmentHeader) + cap;
    size_t off = static_cast<size_t>(at % cap);
    volatile uint64_t* length = off + sizeof h <= cap
                                    ? reinterpret_cast<volatile uint64_t*>(data + off + offsetof(FrameHeader, length))
                                    : nullptr;
    ring.publish();
    ring_host_doorbell();
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
    for (uint64_t i = 0; length && std::chrono::steady_clock::now() < until; ++i)
      *length = (i & 1) ? uint64_t{1} << 62 : sizeof value;
    _exit(0);
  } else if (how == "copy_differs") {
    // A true answer (the int 7) in the ring, and beside the head a copy
    // (SmallCopy) of other bytes: the same frame with a bad magic. The host
    // reads a small answer from the copy, and must check it as it would
    // the ring's bytes.
    ByteRing ring = seg->response_ring();
    int value = 7;
    FrameHeader h = make_frame_header(FrameKind::Value, task, sizeof value);
    ring.write_some(&h, sizeof h);
    ring.write_some(&value, sizeof value);
    uint64_t end = ring.write_position();
    FrameHeader bad = h;
    bad.magic = ~h.magic;
    uint64_t words[kSmallCopyWords] = {};
    std::memcpy(words, &bad, sizeof bad);
    std::memcpy(reinterpret_cast<char*>(words) + sizeof bad, &value, sizeof value);
    SmallCopy& copy = response.small;
    uint32_t seq = (copy.seq.load() | 1U) + 1;
    copy.len.store(sizeof bad + sizeof value);
    copy.end.store(end);
    for (size_t i = 0; i < kSmallCopyWords; ++i) copy.words[i].store(words[i]);
    copy.seq.store(seq);
    response.head.store(end, std::memory_order_release);  // published without ByteRing::publish's own copy
    ring_host_doorbell();
    // Refused, it is killed at once. Should the host take the ring's 7
    // instead, the worker leaves after a while, rather than hold the calls
    // the host sends it next for ever.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    _exit(0);
  } else if (how == "flood") {
    // Parts of one answer that never ends, as fast as the host takes them
    // (each a quarter of the ring, the least a later Part may carry).
    ByteRing ring = seg->response_ring();
    std::vector<char> payload(static_cast<size_t>(cap / 4), 'x');
    FrameHeader part = make_frame_header(FrameKind::Part, task, payload.size());
    auto write_all = [&](const void* p, size_t n) {
      auto* bytes = static_cast<const char*>(p);
      while (n > 0) {
        size_t k = ring.write_some(bytes, n);
        bytes += k;
        n -= k;
        if (n > 0) {
          ring.publish();
          ring_host_doorbell();
          std::this_thread::yield();
        }
      }
    };
    for (;;) {
      write_all(&part, sizeof part);
      write_all(payload.data(), payload.size());
      ring.publish();
      ring_host_doorbell();
    }
  }
  ring_host_doorbell();
  for (;;) ::pause();
}
PROCPOOL_REGISTER(attack_own_segment);

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

uint64_t host_rss() {
  long pages = 0, resident = 0;
  FILE* f = std::fopen("/proc/self/statm", "re");
  if (!f) return 0;
  if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
  std::fclose(f);
  return static_cast<uint64_t>(resident) * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

void only_the_attackers_call_fails(const std::string& how, unsigned seed = 42) {
  CAPTURE(how);
  CAPTURE(seed);
  census::Snapshot before;
  uint64_t rss_before = host_rss();
  {
    // A small message limit: a flood must hit it long before the host's
    // memory grows far.
    procpool::ProcessPool pool({.workers = 2, .ring_bytes = size_t{1} << 20, .max_message_bytes = size_t{16} << 20});
    // Both workers have answered: their indices have moved (zeros then
    // move them backwards).
    REQUIRE(census::eventually([&] {
      std::vector<procpool::Future<int>> warm;
      for (int i = 0; i < 8; ++i) warm.push_back(pool.submit(tasks::add, i, 1));
      for (auto& f : warm) f.get();
      auto s = pool.stats();
      return s.workers.at(0).calls_answered > 0 && s.workers.at(1).calls_answered > 0;
    }));
    std::atomic<bool> stop{false};
    std::atomic<int> bystander_ok{0}, bystander_failed{0};
    std::thread bystander([&] {
      for (int i = 0; !stop.load(); ++i) {
        try {
          if (pool.submit(tasks::add, i, 1).get() == i + 1) bystander_ok.fetch_add(1);
          else bystander_failed.fetch_add(1);
        } catch (...) {
          bystander_failed.fetch_add(1);
        }
      }
    });
    auto t0 = std::chrono::steady_clock::now();
    auto attack = pool.submit(attack_own_segment, how, seed);
    std::string outcome;
    try {
      outcome = "returned " + std::to_string(attack.get());
    } catch (const procpool::ProtocolError&) {
      outcome = "protocol error";
    } catch (const procpool::WorkerCrashed&) {
      outcome = "crashed";
    } catch (const std::exception& e) {
      outcome = e.what();
    }
    auto took = std::chrono::steady_clock::now() - t0;
    bool fine =
        outcome == "protocol error" || outcome == "crashed" || (how == "flip_length" && outcome == "returned 7");
    CHECK_MESSAGE(fine, outcome);
    if (how == "copy_differs") CHECK(outcome == "protocol error");  // the copy was read, and refused
    CHECK(took < 2s);
    std::this_thread::sleep_for(200ms);  // the bystander goes on meanwhile
    stop = true;
    bystander.join();
    CHECK(bystander_failed.load() == 0);
    CHECK(bystander_ok.load() > 0);
    CHECK(pool.submit(tasks::add, 2, 3).get() == 5);
    // Idle again: the host spends next to no CPU while nothing is asked.
    double c0 = cpu_seconds();
    std::this_thread::sleep_for(500ms);
    CHECK(cpu_seconds() - c0 < 0.1);
    CHECK(host_rss() < rss_before + (uint64_t{96} << 20));
  }
  CHECK(census::leaks_since(before) == "");
}

}  // namespace

TEST_CASE("HostileWorkers.RandomBytesOverItsWholeSegmentFailOnlyItsCall" * doctest::timeout(60)) {
  for (unsigned seed : {1u, 2u, 3u}) only_the_attackers_call_fails("random", seed);
}
TEST_CASE("HostileWorkers.AllOnesOverItsWholeSegmentFailOnlyItsCall" * doctest::timeout(60)) {
  only_the_attackers_call_fails("ones");
}
TEST_CASE("HostileWorkers.ZerosOverItsWholeSegmentFailOnlyItsCall" * doctest::timeout(60)) {
  only_the_attackers_call_fails("zeros");
}
TEST_CASE("HostileWorkers.ARingIndexMovedBackwardsFailsOnlyItsCall" * doctest::timeout(60)) {
  only_the_attackers_call_fails("head_backwards");
}
TEST_CASE("HostileWorkers.ARingIndexMovedPastTheCapacityFailsOnlyItsCall" * doctest::timeout(60)) {
  only_the_attackers_call_fails("head_past_capacity");
}
TEST_CASE("HostileWorkers.ALengthFlippingWhileTheHostReadsFailsOnlyItsCall" * doctest::timeout(60)) {
  only_the_attackers_call_fails("flip_length");
}
TEST_CASE("HostileWorkers.ACopyBesideTheHeadUnlikeTheRingIsCheckedAsTheRingIsAndFailsOnlyItsCall" *
          doctest::timeout(60)) {
  only_the_attackers_call_fails("copy_differs");
}
TEST_CASE("HostileWorkers.AFloodOfPartsFailsOnlyItsCallAndTheHostsMemoryStaysBounded" * doctest::timeout(60)) {
  only_the_attackers_call_fails("flood");
}
