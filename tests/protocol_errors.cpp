// SPDX-License-Identifier: MIT
// A worker that writes garbage into its response ring is killed and
// replaced; the call it was running fails with ProtocolError, calls queued
// behind it run on the replacement, and the host carries on.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include <procpool/worker/worker_loop.hpp>

#include "support/census.hpp"
#include "support/task_functions.hpp"

namespace {

void garbage_fails_only_that_task(const char* how, const char* message, size_t ring_bytes = size_t{4} << 20,
                                  size_t max_message_bytes = size_t{1} << 30) {
  CAPTURE(how);
  census::Snapshot before;
  {
    procpool::ProcessPool pool({.workers = 1, .ring_bytes = ring_bytes, .max_message_bytes = max_message_bytes});
    pid_t liar = pool.worker_pids().at(0);
    auto bad = pool.submit(tasks::misbehave_text, std::string(how));
    std::vector<procpool::Future<int>> queued;
    for (int i = 0; i < 5; ++i) queued.push_back(pool.submit(tasks::identity, i));
    try {
      bad.get();
      FAIL("expected ProtocolError");
    } catch (const procpool::ProtocolError& e) {
      CHECK(e.pid() == liar);
      CHECK(e.function() == "misbehave_text");
      CHECK(std::string(e.what()).find(message) != std::string::npos);
      CHECK(std::string(e.what()).find("the worker was killed") != std::string::npos);
    }
    for (int i = 0; i < 5; ++i) CHECK(queued[static_cast<size_t>(i)].get() == i);
    CHECK(pool.submit(tasks::add, 20, 22).get() == 42);
    CHECK(pool.worker_pids().at(0) != liar);
  }
  CHECK(census::leaks_since(before) == "");
}

}  // namespace

TEST_CASE("ProtocolErrors.BadMagicKillsTheWorker" * doctest::timeout(60)) {
  garbage_fails_only_that_task("bad_magic", "bad magic number");
}
TEST_CASE("ProtocolErrors.UnknownFrameKindKillsTheWorker" * doctest::timeout(60)) {
  garbage_fails_only_that_task("bad_kind", "unknown kind 99");
}
TEST_CASE("ProtocolErrors.AnswerToAnotherTaskKillsTheWorker" * doctest::timeout(60)) {
  garbage_fails_only_that_task("wrong_task", "but it was running task");
}
TEST_CASE("ProtocolErrors.SkippingACallNobodyWithdrewKillsTheWorker" * doctest::timeout(60)) {
  garbage_fails_only_that_task("unasked_skip", "a Skipped answer to a call the host never withdrew");
}
TEST_CASE("ProtocolErrors.HugeLengthKillsTheWorker" * doctest::timeout(60)) {
  garbage_fails_only_that_task("huge_length", "over max_message_bytes");
}
TEST_CASE("ProtocolErrors.ALengthThatWrapsPastTwoToThe64KillsTheWorkerOfAPoolWithNoLimit" * doctest::timeout(60)) {
  garbage_fails_only_that_task("length_wraps", "announcing 18446744073709551608 bytes, but only 8 of them", 4096,
                               SIZE_MAX);
}
TEST_CASE("ProtocolErrors.DroppingPartsThatWereNeverSentKillsTheWorker" * doctest::timeout(60)) {
  garbage_fails_only_that_task("dropped_alone", "a Dropped frame with no parts");
}
TEST_CASE("ProtocolErrors.SkippingACallAfterSendingPartsOfItsAnswerKillsTheWorker" * doctest::timeout(60)) {
  garbage_fails_only_that_task("skip_after_part", "a Skipped answer after parts of one");
}
TEST_CASE("ProtocolErrors.PartsAddingUpPastTheMessageLimitKillTheWorker" * doctest::timeout(60)) {
  garbage_fails_only_that_task("parts_over_limit", "a response of 1073741828 bytes, over max_message_bytes");
}
TEST_CASE("ProtocolErrors.AnEmptyPartKillsTheWorker" * doctest::timeout(60)) {
  // Else a worker could keep the host reading frames that add nothing.
  garbage_fails_only_that_task("empty_part", "a Part frame of only 0 bytes");
}
TEST_CASE("ProtocolErrors.ASmallPartAfterTheFirstKillsTheWorker" * doctest::timeout(60)) {
  garbage_fails_only_that_task("small_later_part", "a Part frame of only 8 bytes");
}
TEST_CASE("ProtocolErrors.DroppingPartsTwiceInOneAnswerKillsTheWorker" * doctest::timeout(60)) {
  garbage_fails_only_that_task("dropped_twice", "it dropped the parts of one answer twice");
}
TEST_CASE("ProtocolErrors.ForgedRingHeadKillsTheWorker" * doctest::timeout(60)) {
  garbage_fails_only_that_task("bad_head", "response ring head out of range");
}
TEST_CASE("ProtocolErrors.ForgedStringLengthKillsTheWorker" * doctest::timeout(60)) {
  garbage_fails_only_that_task("garbage_value", "does not decode");
}

TEST_CASE("ProtocolErrors.ForgedRequestTailKillsTheWorker" * doctest::timeout(60)) {
  // A small ring, so that the host must read the (forged) tail to find room
  // for the calls queued behind.
  census::Snapshot before;
  {
    procpool::ProcessPool pool({.workers = 1, .ring_bytes = 4096});
    auto bad = pool.submit(tasks::misbehave_text, std::string("bad_tail"));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::vector<procpool::Future<std::string>> queued;
    for (int i = 0; i < 8; ++i) queued.push_back(pool.submit(tasks::echo, std::string(1000, 'a' + i)));
    CHECK_THROWS_WITH_AS(bad.get(), doctest::Contains("request ring tail out of range"), procpool::ProtocolError);
    for (int i = 0; i < 8; ++i) CHECK(queued[static_cast<size_t>(i)].get() == std::string(1000, 'a' + i));
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("ProtocolErrors.PartOfAHeaderThenDeathFailsOnlyThatCall" * doctest::timeout(60)) {
  // Which the host sees first, the bytes or the death, is a race: either
  // names the worker's fault, and the calls behind it run.
  procpool::ProcessPool pool({.workers = 1});
  auto bad = pool.submit(tasks::misbehave_text, std::string("partial_header_then_die"));
  std::vector<procpool::Future<int>> queued;
  for (int i = 0; i < 5; ++i) queued.push_back(pool.submit(tasks::identity, i));
  try {
    bad.get();
    FAIL("expected WorkerCrashed or ProtocolError");
  } catch (const procpool::WorkerCrashed& e) {
    CHECK(std::string(e.what()).find("killed by SIGKILL") != std::string::npos);
  } catch (const procpool::ProtocolError& e) {
    CHECK(std::string(e.what()).find("less than a frame header") != std::string::npos);
  }
  for (int i = 0; i < 5; ++i) CHECK(queued[static_cast<size_t>(i)].get() == i);
}

// A worker publishes whole frames; bytes that stop inside one are all that
// will come, while the worker sleeps.
TEST_CASE("ProtocolErrors.PartOfAHeaderWhileTheWorkerSleepsKillsTheWorker" * doctest::timeout(60)) {
  garbage_fails_only_that_task("partial_header", "it published 5 bytes, less than a frame header");
}
TEST_CASE("ProtocolErrors.AHeaderWhosePayloadNeverComesKillsTheWorker" * doctest::timeout(60)) {
  garbage_fails_only_that_task("header_only", "a frame header announcing 100 bytes, but only 0 of them");
}

namespace {
// Counts its runs in `path`, then breaks the protocol after setting its
// worker's `started` count back to zero, as if it had never begun a call.
int forge_and_deny(std::string path) {
  tasks::record_run(path, 1);
  auto* segment = procpool::detail::current_worker_segment();
  segment->control().started.store(0);
  return tasks::misbehave("bad_magic");
}
PROCPOOL_REGISTER(forge_and_deny);
}  // namespace

TEST_CASE("ProtocolErrors.WhatAWorkerWritesAfterAMalformedAnswerIsNotRead" * doctest::timeout(60)) {
  // The malformed answer fails its own call and condemns the worker; the
  // answer it forged for the next call (which it never began) must neither
  // settle that call nor be blamed on it: the call runs on the replacement.
  procpool::ProcessPool pool({.workers = 1});
  auto bad = pool.submit(tasks::misbehave_text, std::string("malformed_then_forged_next"));
  auto next = pool.submit(tasks::identity, 5);
  CHECK_THROWS_AS(bad.get(), procpool::ProtocolError);
  CHECK(next.get() == 5);
}

TEST_CASE("ProtocolErrors.AWorkerThatBrokeTheProtocolIsNotBelievedAboutWhatItStarted" * doctest::timeout(60)) {
  char path[] = "/tmp/procpool-denied-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  {
    procpool::ProcessPool pool({.workers = 1});
    auto bad = pool.submit(forge_and_deny, std::string(path));
    auto next = pool.submit(tasks::identity, 5);
    CHECK_THROWS_WITH_AS(bad.get(), doctest::Contains("bad magic number"), procpool::ProtocolError);
    CHECK(next.get() == 5);  // it had not started: it runs on the replacement
  }
  std::ifstream runs(path);
  std::string line;
  int count = 0;
  while (std::getline(runs, line)) ++count;
  CHECK(count == 1);  // never sent again
  std::remove(path);
}
