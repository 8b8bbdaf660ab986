// SPDX-License-Identifier: MIT
// Work stealing: calls handed ahead to a worker whose call runs long move
// to a worker that has fallen idle, keep what they are (their deadline,
// their single run), and leave nothing behind when the worker they left
// dies.
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <procpool/loop/pool_core.hpp>

#include "support/census.hpp"
#include "support/task_functions.hpp"
#include "support/test_files.hpp"

using namespace std::chrono_literals;

namespace {

// How many calls the worker running `f` holds (the running one included).
template <class T>
size_t calls_held_with(procpool::ProcessPool& pool, const procpool::Future<T>& f) {
  pid_t pid = f.status().worker;
  for (auto& w : pool.stats().workers)
    if (w.pid == pid) return w.calls_held;
  return 0;
}

// Every worker has served a call, so that each takes its next at once.
// Returns the calls stolen so far: while one worker was still starting
// (spawn is slow, the more under ASan), the other may have taken its
// calls, so rounds go on until each has answered one of its own.
uint64_t warm_up(procpool::ProcessPool& pool) {
  auto all_served = [&] {
    auto workers = pool.stats().workers;
    return std::all_of(workers.begin(), workers.end(), [](const auto& w) { return w.calls_answered > 0; });
  };
  for (int round = 0; round < 500 && !all_served(); ++round) {
    std::vector<procpool::Future<int>> calls;
    for (int i = 0; i < 4; ++i) calls.push_back(pool.submit(tasks::identity, i));
    for (auto& f : calls) f.get();
    if (!all_served()) std::this_thread::sleep_for(10ms);
  }
  REQUIRE(all_served());
  return pool.stats().stolen;
}

// A sleep of `ms` that its worker has begun.
procpool::Future<double> running_sleep(procpool::ProcessPool& pool, int ms) {
  auto f = pool.submit(tasks::sleep_ms, ms);
  REQUIRE(census::eventually([&] { return f.running(); }));
  return f;
}

// The same, on the first slot's worker: calls submitted next, when both
// workers hold as much, go to the first slot (dispatch.cpp breaks ties by
// slot), so the tests that queue a call behind the long one need it there.
// When the long call went to the other slot (under ASan, a warm-up answer
// can still be counted on the first as the long call is sent), it is let
// run out and sent again.
procpool::Future<double> running_sleep_on_first(procpool::ProcessPool& pool, int ms) {
  for (int attempt = 0;; ++attempt) {
    auto f = running_sleep(pool, ms);
    if (f.status().worker == pool.worker_pids().front() || attempt == 20) return f;
    f.get();
  }
}

// What runs_in says when the ids 0 to n - 1 ran once each.
std::map<int, int> each_once(int n) {
  std::map<int, int> runs;
  for (int id = 0; id < n; ++id) runs[id] = 1;
  return runs;
}

}  // namespace

TEST_CASE("WorkStealing.CallsQueuedBehindALongCallMoveToAWorkerThatFallsIdle" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 2});
  uint64_t stolen_before = warm_up(pool);
  auto started = std::chrono::steady_clock::now();
  auto long_call = running_sleep_on_first(pool, 5000);
  // Dispatch hands these out by load: some go behind the long call.
  std::vector<procpool::Future<double>> short_calls;
  for (int i = 0; i < 6; ++i) short_calls.push_back(pool.submit(tasks::sleep_ms, 20));
  REQUIRE(calls_held_with(pool, long_call) >= 2);
  for (auto& f : short_calls) CHECK(f.get() == 20);
  // On one worker, one after the other: 120 ms and what moving them cost.
  CHECK_FALSE(long_call.ready());
  CHECK(std::chrono::steady_clock::now() - started < 4s);
  CHECK(pool.stats().stolen - stolen_before >= 1);
  CHECK(long_call.cancel());  // stops its worker: the test need not wait for it
}

TEST_CASE("WorkStealing.CallsHandedToAStoppedWorkerMoveToAnIdleOneButItsFront" * doctest::timeout(60)) {
  // A worker stopped from outside (a debugger, a frozen cgroup) before it
  // began its calls: all but its front one run on the other worker.
  procpool::ProcessPool pool({.workers = 2});
  warm_up(pool);
  pid_t stopped = pool.worker_pids().at(0);
  ::kill(stopped, SIGSTOP);
  std::vector<procpool::Future<double>> calls;
  for (int i = 0; i < 20; ++i) calls.push_back(pool.submit(tasks::sleep_ms, 5));
  auto done = [&] {
    return static_cast<size_t>(std::count_if(calls.begin(), calls.end(), [](auto& f) { return f.ready(); }));
  };
  CHECK(census::eventually([&] { return done() >= 19; }, 5000ms));
  ::kill(stopped, SIGCONT);
  for (auto& f : calls) CHECK(f.get() == 5);
  CHECK(pool.stats().stolen >= 1);
}

TEST_CASE("WorkStealing.EveryStolenCallRunsExactlyOnce" * doctest::timeout(60)) {
  std::string path = temp_path("once");
  std::remove(path.c_str());
  {
    procpool::ProcessPool pool({.workers = 2});
    uint64_t stolen_before = warm_up(pool);
    auto long_call = running_sleep_on_first(pool, 600);
    auto other = pool.submit(tasks::sleep_ms, 30);  // the other worker, then idle
    std::vector<procpool::Future<int>> recorded;
    for (int id = 0; id < 40; ++id) recorded.push_back(pool.submit(tasks::record_run, path, id));
    REQUIRE(calls_held_with(pool, long_call) >= 2);
    for (int id = 0; id < 40; ++id) CHECK(recorded[static_cast<size_t>(id)].get() == id);
    CHECK_FALSE(long_call.ready());  // none waited for it
    CHECK(long_call.get() == 600);   // the calls it was left with were placeholders
    CHECK(other.get() == 30);
    CHECK(pool.stats().stolen - stolen_before >= 1);
    CHECK(pool.stats().succeeded == 4 + 42);
  }
  CHECK(runs_in(path) == each_once(40));
  std::remove(path.c_str());
}

// The worker begins a call (step 0: before the host's withdrawal entry;
// step 1: after it, so it skips the call) while the host is taking it back:
// the host cannot prove the withdrawal, the call stays where it was, and
// its one outcome arrives (for a skipped call: sent again).
TEST_CASE("WorkStealing.AStealTheWorkerRacesLeavesItsCallRunOnce" * doctest::timeout(60)) {
  for (int step : {0, 1}) {
    CAPTURE(step);
    std::string path = temp_path("race");
    std::remove(path.c_str());
    static int race_step;
    static std::atomic<int> hooked;
    race_step = step;
    hooked = 0;
    {
      procpool::ProcessPool pool({.workers = 2});
      warm_up(pool);
      auto long_call = running_sleep_on_first(pool, 80);
      // Stops the reactor (which steals) until the long call has ended and
      // its worker has begun the next.
      // Cleared however this round ends: a later test must not steal slowly.
      struct ClearHook {
        ~ClearHook() { procpool::detail::withdrawal_race_for_tests = nullptr; }
      } clear_hook;
      procpool::detail::withdrawal_race_for_tests = [](int at) {
        if (at != race_step) return;
        ++hooked;
        std::this_thread::sleep_for(250ms);
      };
      auto other = pool.submit(tasks::sleep_ms, 20);
      auto target = pool.submit(tasks::record_run, path, 7);
      REQUIRE(calls_held_with(pool, long_call) == 2);
      CHECK(target.get() == 7);
      CHECK(long_call.get() == 80);
      CHECK(other.get() == 20);
      procpool::detail::withdrawal_race_for_tests = nullptr;
    }
    CHECK(hooked.load() >= 1);  // the steal was tried
    CHECK(runs_in(path) == std::map<int, int>{{7, 1}});
    std::remove(path.c_str());
  }
}

TEST_CASE("WorkStealing.AStolenCallKeepsItsTimeout" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 2});
  uint64_t stolen_before = warm_up(pool);
  auto long_call = running_sleep_on_first(pool, 5000);
  auto other = pool.submit(tasks::sleep_ms, 50);
  auto timed = pool.submit_with({.timeout = 200ms}, tasks::sleep_ms, 2000);
  REQUIRE(calls_held_with(pool, long_call) == 2);
  // Moved at about 50 ms, stopped at its deadline 200 ms after it began:
  // with its timeout lost it would succeed after 2 s; left behind the long
  // call, it would fail only once that had run 5 s.
  CHECK_THROWS_AS(timed.get(), procpool::TaskTimeout);
  CHECK_FALSE(long_call.ready());
  CHECK(other.get() == 50);
  CHECK(pool.stats().stolen - stolen_before == 1);
  CHECK(long_call.cancel());
}

TEST_CASE("WorkStealing.AWorkerThatDiesAfterItsCallsMovedFailsOnlyItsOwnCall" * doctest::timeout(60)) {
  census::Snapshot before;
  long states_before = procpool::detail::StateBase::live_count();
  std::string path = temp_path("death");
  std::remove(path.c_str());
  {
    procpool::ProcessPool pool({.workers = 2});
    uint64_t stolen_before = warm_up(pool);
    auto hang = pool.submit(tasks::crash, std::string("hang"));
    REQUIRE(census::eventually([&] { return hang.running(); }));
    pid_t victim = hang.status().worker;
    auto other = pool.submit(tasks::sleep_ms, 20);
    std::vector<procpool::Future<int>> recorded;
    for (int id = 0; id < 6; ++id) recorded.push_back(pool.submit(tasks::record_run, path, id));
    REQUIRE(calls_held_with(pool, hang) >= 2);
    for (int id = 0; id < 6; ++id) CHECK(recorded[static_cast<size_t>(id)].get() == id);
    CHECK(pool.stats().stolen - stolen_before >= 1);
    // The worker it left still holds their placeholders; it dies.
    REQUIRE(::kill(victim, SIGKILL) == 0);
    CHECK_THROWS_AS(hang.get(), procpool::WorkerCrashed);
    CHECK(other.get() == 20);
    CHECK(pool.submit(tasks::identity, 9).get() == 9);  // its replacement, or the other
    auto stats = pool.stats();
    CHECK(stats.crashed == 1);
    CHECK(stats.settled() == stats.submitted);
  }
  CHECK(runs_in(path) == each_once(6));
  std::remove(path.c_str());
  CHECK(procpool::detail::StateBase::live_count() == states_before);
  CHECK(census::leaks_since(before).empty());
}

// The placeholders a steal leaves on the worker it took calls from are not
// calls: a shutdown that waits for the calls held waits for the long call,
// not for them.
TEST_CASE("WorkStealing.AShutdownThatWaitsEndsWhenTheCallsLeftEnd" * doctest::timeout(60)) {
  std::chrono::steady_clock::duration took{};
  {
    procpool::ProcessPool pool({.workers = 2});
    uint64_t stolen_before = warm_up(pool);
    auto long_call = running_sleep_on_first(pool, 500);
    auto other = pool.submit(tasks::sleep_ms, 20);
    std::vector<procpool::Future<int>> moved;
    for (int i = 0; i < 6; ++i) moved.push_back(pool.submit(tasks::identity, i));
    REQUIRE(calls_held_with(pool, long_call) >= 2);
    for (auto& f : moved) f.get();
    REQUIRE(pool.stats().stolen - stolen_before >= 1);
    REQUIRE_FALSE(long_call.ready());
    auto started = std::chrono::steady_clock::now();
    pool.shutdown();
    took = std::chrono::steady_clock::now() - started;
    CHECK(long_call.get() == 500);
  }
  CHECK(took < 10s);
}

// A cancelled call stays in its worker's queue until the worker skips it;
// the calls before it still move.
TEST_CASE("WorkStealing.CallsBeforeACancelledOneStillMove" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 2});
  uint64_t stolen_before = warm_up(pool);
  auto long_call = running_sleep_on_first(pool, 5000);
  auto other = pool.submit(tasks::sleep_ms, 50);
  auto first = pool.submit(tasks::identity, 1);   // behind the long call
  auto second = pool.submit(tasks::identity, 2);  // behind `other`
  auto newest = pool.submit(tasks::identity, 3);  // behind the long call, last
  REQUIRE(calls_held_with(pool, long_call) == 3);
  REQUIRE(newest.cancel());
  CHECK(first.get() == 1);
  CHECK(second.get() == 2);
  CHECK_FALSE(long_call.ready());
  CHECK(pool.stats().stolen - stolen_before == 1);
  CHECK(long_call.cancel());
}
