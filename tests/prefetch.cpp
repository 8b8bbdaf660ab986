// SPDX-License-Identifier: MIT
// How many calls a worker is handed ahead (PoolOptions::prefetch_per_worker):
// unset, as many as its pace says it runs in about 100 µs once a backlog
// waits (16 to 256); set, exactly that many.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "support/census.hpp"
#include "support/task_functions.hpp"

using namespace std::chrono_literals;

namespace {

std::chrono::nanoseconds pace_of(procpool::ProcessPool& pool) { return pool.stats().workers.at(0).pace; }

// No-ops queued back to back on a one-worker pool until the worker's pace
// is that of a no-op (or 20 rounds have gone: a sanitized build's no-op
// may stay slower than the pace that earns a deeper queue).
void run_short_calls(procpool::ProcessPool& pool) {
  for (int round = 0; round < 20 && (pace_of(pool) == 0ns || pace_of(pool) > 2us); ++round) {
    std::vector<procpool::Future<void>> fs;
    for (int i = 0; i < 2000; ++i) fs.push_back(pool.submit(tasks::noop));
    for (auto& f : fs) f.get();
  }
}

void until_running(procpool::Future<double>& f) {
  auto give_up = std::chrono::steady_clock::now() + 10s;
  while (f.status().state != procpool::CallState::running && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(1ms);
  REQUIRE(f.status().state == procpool::CallState::running);
}

// What dispatch hands a worker of this pace while a backlog waits.
size_t paced_room(std::chrono::nanoseconds pace) {
  if (pace == 0ns) return 16;
  return std::clamp<size_t>(static_cast<size_t>(std::chrono::nanoseconds(100us) / pace), 16, 256);
}

struct Backlog {
  procpool::Future<double> blocker;
  std::vector<procpool::Future<void>> behind;
  void settle() {
    CHECK(blocker.get() >= 0);
    for (auto& f : behind) f.get();
  }
};

// A call that keeps the worker busy (its pace cannot change meanwhile: it
// is measured when a call begins), then `count` no-ops behind it.
Backlog backlog_behind_a_sleep(procpool::ProcessPool& pool, int count) {
  Backlog b{pool.submit(tasks::sleep_ms, 500), {}};
  until_running(b.blocker);
  for (int i = 0; i < count; ++i) b.behind.push_back(pool.submit(tasks::noop));
  return b;
}

// A backlog of `count` no-ops behind a sleep: the worker holds `held`
// calls (the sleep and those behind it), the rest wait on the host.
void backlog_waits_on_the_host_past(procpool::ProcessPool& pool, size_t held, int count) {
  Backlog b = backlog_behind_a_sleep(pool, count);
  procpool::PoolStats s = pool.stats();
  CHECK(s.workers.at(0).calls_held == held);
  CHECK(s.queued == static_cast<size_t>(count) + 1 - held);
  b.settle();
}

}  // namespace

TEST_CASE("Prefetch.ABacklogOfShortCallsIsHandedToAWorkerAsDeepAsItsPace" * doctest::timeout(60)) {
  census::Snapshot before;
  {
    procpool::ProcessPool pool({.workers = 1});
    run_short_calls(pool);
    Backlog b = backlog_behind_a_sleep(pool, 500);
    procpool::PoolStats s = pool.stats();
    auto pace = s.workers.at(0).pace;
    CHECK(pace > 0ns);
    CHECK(s.workers[0].calls_held == paced_room(pace));
    CHECK(s.in_flight + s.queued == 501);
    if (pace <= 100us / 17) CHECK(s.workers[0].calls_held > 16);
    else MESSAGE("a no-op took ", pace.count(), " ns here: too slow a pace to queue deeper than 16");
    b.settle();
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Prefetch.ACountTheUserSetIsHeldToWhateverThePace" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1, .prefetch_per_worker = 16});
  run_short_calls(pool);
  backlog_waits_on_the_host_past(pool, 16, 500);
}

TEST_CASE("Prefetch.APaceRisesAtOnceToASlowCallAndIgnoresIdleTime" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1});
  run_short_calls(pool);
  auto fast = pace_of(pool);
  REQUIRE(fast > 0ns);
  REQUIRE(fast < 10ms);

  // A slow call with nothing queued behind it, and idle time after it: the
  // worker waited between calls, so neither is a call's time.
  CHECK(pool.submit(tasks::sleep_ms, 30).get() >= 0);
  std::this_thread::sleep_for(50ms);
  pool.submit(tasks::noop).get();
  CHECK(pace_of(pool) < 10ms);

  // A slow call with one queued behind it: its time is the pace at once.
  auto slow = pool.submit(tasks::sleep_ms, 30);
  auto next = pool.submit(tasks::noop);
  CHECK(slow.get() >= 0);
  next.get();
  CHECK(pace_of(pool) >= 30ms);

  // And a backlog behind a slow worker waits on the host.
  backlog_waits_on_the_host_past(pool, 16, 100);
}

TEST_CASE("Prefetch.EveryCallQueuedDeepInAWorkerCanStillBeCancelled" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1});
  run_short_calls(pool);
  Backlog b = backlog_behind_a_sleep(pool, 400);
  size_t held = pool.stats().workers.at(0).calls_held;
  MESSAGE(held, " calls held by the worker");
  size_t refused = 0;
  for (auto& f : b.behind) refused += !f.cancel();
  CHECK(refused == 0);
  size_t cancelled = 0;
  for (auto& f : b.behind) {
    try {
      f.get();
    } catch (const procpool::TaskCancelled&) {
      ++cancelled;
    }
  }
  CHECK(cancelled == b.behind.size());
  CHECK(b.blocker.get() >= 0);
  // The worker skipped every withdrawn call and still serves.
  CHECK(pool.submit(tasks::identity, 7).get() == 7);
  procpool::PoolStats s = pool.stats();
  CHECK(s.cancelled == 400);
  CHECK(s.worker_deaths == 0);
}
