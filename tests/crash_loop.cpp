// SPDX-License-Identifier: MIT
// Workers' lives, the crash-loop breaker: a function whose calls killed
// crash_loop.count workers in a row within the window fails its further
// calls at once with CrashLoopDetected for the cool-down, forking nothing;
// other functions are served meanwhile; an answer in between ends a streak.
#include <doctest/doctest.h>

#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "support/census.hpp"
#include "support/task_functions.hpp"

namespace {
using namespace std::chrono_literals;

// Crashes (SIGSEGV) when asked, else returns its pid.
int crash_if(bool crash) {
  if (crash) tasks::crash("segv");
  return static_cast<int>(getpid());
}
PROCPOOL_REGISTER(crash_if);

// Runs crash_if(crash) and says how it ended: "ok", "crashed" or "loop".
std::string outcome(procpool::ProcessPool& pool, bool crash) {
  auto f = pool.submit(crash_if, crash);
  REQUIRE(f.wait_for(10s));
  try {
    f.get();
    return "ok";
  } catch (const procpool::WorkerCrashed&) {
    return "crashed";
  } catch (const procpool::CrashLoopDetected&) {
    return "loop";
  }
}

}  // namespace

TEST_CASE("CrashLoop.AFunctionThatKeepsKillingWorkersFailsFastForTheCooldown" * doctest::timeout(60)) {
  census::Snapshot before;
  {
    procpool::ProcessPool pool({.workers = 1, .crash_loop = {.count = 3, .window = 10s, .cooldown = 1s}});
    for (int i = 0; i < 3; ++i) CHECK(outcome(pool, true) == "crashed");
    // The failure is published before the replacement is forked: wait for it.
    REQUIRE(census::eventually([&] { return !pool.worker_pids().empty(); }));
    pid_t worker = pool.worker_pids().at(0);
    auto t0 = std::chrono::steady_clock::now();
    auto refused = pool.submit(crash_if, false);  // even a call that would not crash: the function is refused
    REQUIRE(refused.wait_for(10s));
    CHECK(std::chrono::steady_clock::now() - t0 < 200ms);
    try {
      refused.get();
      FAIL("expected CrashLoopDetected");
    } catch (const procpool::CrashLoopDetected& e) {
      CHECK(e.function() == "crash_if");
      CHECK(e.crashes() == 3);
      CHECK(e.cooldown() == 1s);
      CHECK(std::string(e.what()) ==
            "'crash_if' killed 3 workers in a row within 10000 ms: its calls fail without running for 1000 ms "
            "(crash_loop)");
    }
    CHECK(outcome(pool, true) == "loop");
    CHECK(pool.worker_pids().at(0) == worker);        // nothing ran, nothing was forked
    CHECK(pool.submit(tasks::add, 2, 2).get() == 4);  // other functions are served
    std::this_thread::sleep_for(1100ms);
    CHECK(outcome(pool, false) == "ok");  // the cool-down is over
    CHECK(outcome(pool, true) == "crashed");
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("CrashLoop.AnAnswerBetweenKillsEndsTheStreak" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1, .crash_loop = {.count = 3, .window = 10s, .cooldown = 10s}});
  for (int round = 0; round < 3; ++round) {
    CHECK(outcome(pool, true) == "crashed");
    CHECK(outcome(pool, true) == "crashed");
    CHECK(outcome(pool, false) == "ok");
  }
}

TEST_CASE("CrashLoop.KillsFurtherApartThanTheWindowAreNoLoop" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1, .crash_loop = {.count = 2, .window = 300ms, .cooldown = 10s}});
  for (int i = 0; i < 3; ++i) {
    CHECK(outcome(pool, true) == "crashed");
    std::this_thread::sleep_for(400ms);
  }
}

TEST_CASE("CrashLoop.IsOffByDefault" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1});
  for (int i = 0; i < 6; ++i) CHECK(outcome(pool, true) == "crashed");
}
