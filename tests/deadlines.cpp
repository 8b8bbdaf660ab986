// SPDX-License-Identifier: MIT
// Deadlines and stopping a running call: a call past its deadline fails
// with TaskTimeout and its worker, with everything it forked, is killed and
// replaced, whatever the task does to resist; calls queued behind it run
// once, on the replacement; cancel() of a running call does the same with
// TaskCancelled.
#include <doctest/doctest.h>

#include <boost/asio/use_future.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support/census.hpp"
#include "support/task_functions.hpp"
#include "support/test_files.hpp"

namespace {
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

int spin_forever(int) {
  for (;;) asm volatile("");  // a side effect the compiler must keep
}
PROCPOOL_REGISTER(spin_forever);

int ignore_sigterm_and_spin() {
  ::signal(SIGTERM, SIG_IGN);
  return spin_forever(0);
}
PROCPOOL_REGISTER(ignore_sigterm_and_spin);

int block_in_read() {
  int fds[2];
  if (::pipe(fds) != 0) return -1;
  char c;
  return static_cast<int>(::read(fds[0], &c, 1));  // nobody writes: for ever
}
PROCPOOL_REGISTER(block_in_read);

int stop_myself() {
  ::raise(SIGSTOP);
  return 1;
}
PROCPOOL_REGISTER(stop_myself);

// Forks a child that sleeps until killed, writes its pid to `path`, spins.
int fork_sleeper_and_spin(std::string path) {
  pid_t child = ::fork();
  if (child == 0)
    for (;;) ::pause();
  std::ofstream(path) << child << "\n";
  return spin_forever(0);
}
PROCPOOL_REGISTER(fork_sleeper_and_spin);

int close_my_fds_and_spin() {
  ::syscall(SYS_close_range, 3u, ~0u, 0u);
  return spin_forever(0);
}
PROCPOOL_REGISTER(close_my_fds_and_spin);

// Appends `id` to `path` as it begins, then sleeps `ms`.
int record_then_sleep(std::string path, int id, int ms) {
  tasks::record_run(path, id);
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return id;
}
PROCPOOL_REGISTER(record_then_sleep);

// Queues `n` calls that record their runs in `path`: on one worker, they
// wait in its ring behind the call before them.
std::vector<procpool::Future<int>> queue_behind(procpool::ProcessPool& pool, const std::string& path, int n) {
  std::vector<procpool::Future<int>> behind;
  for (int i = 0; i < n; ++i) behind.push_back(pool.submit(tasks::record_run, path, i));
  return behind;
}

// Each call queue_behind made succeeded, and each of the `ids` calls that
// recorded themselves in `path` ran exactly once.
void check_each_ran_once(std::vector<procpool::Future<int>>& behind, const std::string& path, size_t ids) {
  for (int i = 0; i < static_cast<int>(behind.size()); ++i) {
    REQUIRE(behind[i].wait_for(10s));
    CHECK(behind[i].get() == i);
  }
  auto runs = runs_in(path);
  CHECK(runs.size() == ids);
  for (auto [id, n] : runs) CHECK(n == 1);
}

bool replaced(procpool::ProcessPool& pool, pid_t old) {
  return census::eventually([&] {
    auto pids = pool.worker_pids();
    return !pids.empty() && std::find(pids.begin(), pids.end(), old) == pids.end();
  });
}

struct Subreaper {
  Subreaper() { REQUIRE(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0); }
  ~Subreaper() { prctl(PR_SET_CHILD_SUBREAPER, 0); }
};

// The destructor must not wait for a call that would never end, were the
// deadline not working: the test then fails instead of hanging.
procpool::PoolOptions one_worker() { return {.workers = 1, .destructor_wait = 0ms}; }

template <class T>
void require_timeout(procpool::Future<T>& f) {
  REQUIRE(f.wait_for(10s));
  CHECK_THROWS_AS(f.get(), procpool::TaskTimeout);
}
}  // namespace

TEST_CASE("Deadlines.AnInfiniteLoopIsStoppedItsWorkerReplacedAndTheCallsBehindItRunOnce" * doctest::timeout(60)) {
  census::Snapshot before;
  std::string path = temp_path("behind");
  {
    procpool::ProcessPool pool(one_worker());
    pid_t first = pool.worker_pids().at(0);
    auto stuck = pool.submit_with({.timeout = 200ms}, spin_forever, 0);
    auto behind = queue_behind(pool, path, 5);
    require_timeout(stuck);
    check_each_ran_once(behind, path, 5);
    CHECK(replaced(pool, first));
  }
  std::remove(path.c_str());
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Deadlines.ATaskIgnoringSigtermIsKilledAfterTheGraceWhileItsReplacementServes" * doctest::timeout(60)) {
  // A grace long enough for a replacement to start on a loaded machine
  // under a sanitizer (a spawned worker there can take half a second).
  constexpr auto grace = 2000ms;
  auto options = one_worker();
  options.stop_grace = grace;
  procpool::ProcessPool pool(options);
  // Started (a spawned worker under a sanitizer takes a while): else the
  // deadline could pass before the task ignores SIGTERM.
  REQUIRE(pool.submit(tasks::add, 1, 1).get() == 2);
  pid_t first = pool.worker_pids().at(0);
  auto start = Clock::now();
  auto f = pool.submit_with({.timeout = 100ms}, ignore_sigterm_and_spin);
  require_timeout(f);  // at the deadline, not after the grace
  CHECK(Clock::now() - start < grace);
  // The replacement serves during the grace, while the stopped worker, which
  // outlived SIGTERM, is still there.
  CHECK(pool.submit(tasks::add, 2, 3).get() == 5);
  CHECK(replaced(pool, first));
  bool within_grace = Clock::now() - start < grace;
  bool old_still_there = census::process_exists(first);
  if (within_grace) CHECK(old_still_there);
  // SIGKILL at the end of the grace, and reaped.
  CHECK(census::eventually([&] { return !census::process_exists(first); }, grace + 2000ms));
  CHECK(Clock::now() - start >= grace + 100ms);
}

// Survives SIGTERM, polls the stop request, and returns when it comes.
int stop_when_asked(int value) {
  ::signal(SIGTERM, SIG_IGN);
  while (!procpool::this_call::stop_requested()) asm volatile("");
  return value;
}
PROCPOOL_REGISTER(stop_when_asked);

TEST_CASE("Deadlines.ATaskThatPollsTheStopRequestEndsWithinTheGraceAndItsWorkerBeginsNothingMore" *
          doctest::timeout(60)) {
  CHECK_FALSE(procpool::this_call::stop_requested());  // not in a worker
  std::string path = temp_path("polls");
  auto options = one_worker();
  options.stop_grace = 10s;
  procpool::ProcessPool pool(options);
  pid_t first = pool.worker_pids().at(0);
  auto f = pool.submit_with({.timeout = 100ms}, stop_when_asked, 7);
  auto behind = queue_behind(pool, path, 3);
  require_timeout(f);  // its late value is dropped
  // The worker exits after the task returns, long before the grace ends,
  // and the calls behind it run once, on the replacement.
  auto start = Clock::now();
  check_each_ran_once(behind, path, 3);
  CHECK(Clock::now() - start < 5s);
  CHECK(replaced(pool, first));
  std::remove(path.c_str());
}

TEST_CASE("Deadlines.ATaskBlockedInReadIsStopped" * doctest::timeout(60)) {
  procpool::ProcessPool pool(one_worker());
  auto f = pool.submit_with({.timeout = 150ms}, block_in_read);
  require_timeout(f);
  CHECK(pool.submit(tasks::add, 1, 1).get() == 2);
}

TEST_CASE("Deadlines.ATaskThatStoppedItselfWithSigstopIsStopped" * doctest::timeout(60)) {
  for (auto grace : {0ms, 100ms}) {
    auto options = one_worker();
    options.stop_grace = grace;
    procpool::ProcessPool pool(options);
    auto f = pool.submit_with({.timeout = 150ms}, stop_myself);
    require_timeout(f);
    CHECK(pool.submit(tasks::add, 1, 2).get() == 3);
  }
}

TEST_CASE("Deadlines.AGrandchildATimedOutTaskForkedIsGoneWithin2s" * doctest::timeout(60)) {
  Subreaper subreaper;
  std::string path = temp_path("grandchild");
  procpool::ProcessPool pool(one_worker());
  auto f = pool.submit_with({.timeout = 300ms}, fork_sleeper_and_spin, path);
  require_timeout(f);
  int child = 0;
  std::ifstream(path) >> child;
  std::remove(path.c_str());
  REQUIRE(child > 0);
  CHECK(census::eventually([&] { return census::orphans_gone({child}); }, 2000ms));
}

TEST_CASE("Deadlines.ADeadlineIsNeverEarlyAndTimeInTheQueueDoesNotCount" * doctest::timeout(60)) {
  // Two workers, 20 calls of 200 ms with a 1 s deadline: the last ones wait
  // up to 1.8 s in the queue (and behind another call in their worker's
  // ring), longer than the deadline, and every one succeeds. The 800 ms
  // margin is for a loaded machine under a sanitizer.
  procpool::ProcessPool pool({.workers = 2, .prefetch_per_worker = 4, .destructor_wait = 0ms});
  std::vector<procpool::Future<double>> calls;
  auto start = Clock::now();
  for (int i = 0; i < 20; ++i) calls.push_back(pool.submit_with({.timeout = 1000ms}, tasks::sleep_ms, 200));
  for (auto& f : calls) {
    REQUIRE(f.wait_for(20s));
    CHECK(f.get() == 200);
  }
  CHECK(Clock::now() - start >= 1800ms);  // some did wait longer than the deadline
}

TEST_CASE("Deadlines.AWorkerThatClosedAllItsDescriptorsStillTimesOut" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1, .host_spin = 0us, .destructor_wait = 0ms});
  auto f = pool.submit_with({.timeout = 200ms}, close_my_fds_and_spin);
  require_timeout(f);
  CHECK(pool.submit(tasks::identity, 9).get() == 9);
}

TEST_CASE("Deadlines.TheTimeoutNamesTheFunctionTheDeadlineAndTheWorker" * doctest::timeout(60)) {
  procpool::ProcessPool pool(one_worker());
  pid_t worker = pool.worker_pids().at(0);
  auto f = pool.call_with<int>({.timeout = 250ms}, "spin_forever", 1);
  REQUIRE(f.wait_for(10s));
  try {
    f.get();
    FAIL("expected TaskTimeout");
  } catch (const procpool::TaskTimeout& e) {
    CHECK(e.function() == "spin_forever");
    CHECK(e.deadline() == 250ms);
    CHECK(e.pid() == worker);
    CHECK(std::string(e.what()) == "'spin_forever' did not finish within its deadline of 250 ms in worker " +
                                       std::to_string(worker) + ", which was killed and replaced");
  }
}

TEST_CASE("Deadlines.ThePoolsDefaultAppliesToCallsAndMapChunksAndACallMaySetNone" * doctest::timeout(60)) {
  auto options = one_worker();
  options.timeout = 200ms;
  procpool::ProcessPool pool(options);
  auto f = pool.submit(spin_forever, 0);
  require_timeout(f);
  auto m = pool.map(spin_forever, std::vector<int>{1, 2}, 1);  // a chunk is a call
  require_timeout(m);
  CHECK(pool.submit_with({.timeout = 0ms}, tasks::sleep_ms, 400).get() == 400);
  CHECK(pool.submit_with({.timeout = 600ms}, tasks::sleep_ms, 400).get() == 400);
}

TEST_CASE("Deadlines.AsyncCallAndRunInExecutorTakeADeadline" * doctest::timeout(60)) {
  procpool::ProcessPool pool(one_worker());
  std::future<int> asio_call = pool.async_call_with({.timeout = 100ms}, spin_forever, 0, boost::asio::use_future);
  CHECK_THROWS_AS(asio_call.get(), procpool::TaskTimeout);
  procpool::EventLoop loop;
  auto by_pointer = [&]() -> procpool::Task<int> {
    co_return co_await loop.run_in_executor_with({.timeout = 100ms}, pool, spin_forever, 0);
  };
  CHECK_THROWS_AS(loop.run_until_complete(by_pointer()), procpool::TaskTimeout);
  auto by_name = [&]() -> procpool::Task<int> {
    co_return co_await loop.run_in_executor_with<int>({.timeout = 100ms}, pool, "spin_forever", 0);
  };
  CHECK_THROWS_AS(loop.run_until_complete(by_name()), procpool::TaskTimeout);
  CHECK(loop.run_until_complete([&]() -> procpool::Task<int> {
    co_return co_await loop.run_in_executor_with({.timeout = 2000ms}, pool, tasks::add, 2, 3);
  }()) == 5);
}

TEST_CASE("Deadlines.WaitForKillsNothing" * doctest::timeout(60)) {
  procpool::ProcessPool pool(one_worker());
  pid_t worker = pool.worker_pids().at(0);
  auto f = pool.submit(tasks::sleep_ms, 300);
  CHECK_FALSE(f.wait_for(50ms));
  CHECK(f.get() == 300);
  CHECK(pool.worker_pids().at(0) == worker);
}

TEST_CASE("Deadlines.CancelOfARunningCallStopsItsWorker" * doctest::timeout(60)) {
  census::Snapshot before;
  std::string path = temp_path("cancel");
  {
    procpool::ProcessPool pool(one_worker());
    pid_t first = pool.worker_pids().at(0);
    auto running = pool.submit(record_then_sleep, path, 100, 100000);
    auto behind = queue_behind(pool, path, 3);
    REQUIRE(census::eventually([&] { return runs_in(path).count(100) == 1; }));
    CHECK(running.cancel());
    CHECK(running.cancelled());
    CHECK_THROWS_AS(running.get(), procpool::TaskCancelled);
    CHECK_FALSE(running.cancel());         // settled: nothing more
    check_each_ran_once(behind, path, 4);  // and the cancelled one once
    CHECK(replaced(pool, first));
  }
  std::remove(path.c_str());
  CHECK(census::leaks_since(before) == "");
}

// The worker has answered the call before and begun this one, but the host
// has not read that answer yet (its thread is busy in a callback): cancel()
// must still stop the running call (it used to say false, as if the call
// were queued behind an answer, and the call then ran to its end).
TEST_CASE("Deadlines.CancelOfARunningCallBehindAnUnreadAnswerStopsItsWorker" * doctest::timeout(60)) {
  census::Snapshot before;
  std::string path = temp_path("unread");
  {
    procpool::ProcessPool pool(one_worker());
    pid_t first = pool.worker_pids().at(0);
    std::atomic<bool> release{false};
    auto gate = pool.submit(tasks::sleep_ms, 20);
    gate.then([&](auto) {  // holds the pool's thread: no answer is read meanwhile
      while (!release.load()) std::this_thread::sleep_for(1ms);
    });
    REQUIRE(census::eventually([&] { return gate.ready(); }));
    auto answered = pool.submit(tasks::add, 2, 3);
    auto running = pool.submit(record_then_sleep, path, 100, 5000);
    REQUIRE(census::eventually([&] { return runs_in(path).count(100) == 1; }));
    bool said = running.cancel();
    release = true;
    CHECK(said);
    CHECK(running.cancelled());
    CHECK_THROWS_AS(running.get(), procpool::TaskCancelled);
    REQUIRE(answered.wait_for(10s));
    CHECK(answered.get() == 5);
    CHECK(replaced(pool, first));
  }
  std::remove(path.c_str());
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Deadlines.APoolDestroyedRightAfterAStopReapsTheStoppedWorker" * doctest::timeout(60)) {
  census::Snapshot before;
  for (int round = 0; round < 5; ++round) {
    auto options = one_worker();
    options.stop_grace = 5000ms;  // still in its grace when the pool goes
    procpool::ProcessPool pool(options);
    auto running = pool.submit(ignore_sigterm_and_spin);
    REQUIRE(census::eventually([&] { return running.running(); }));
    CHECK(running.cancel());
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Deadlines.TheLoopsCancellationsStopARunningCall" * doctest::timeout(60)) {
  procpool::ProcessPool pool(one_worker());
  procpool::EventLoop loop;
  SUBCASE("wait_for") {
    pid_t first = pool.worker_pids().at(0);
    auto call = pool.submit(spin_forever, 0);
    CHECK_THROWS_AS(loop.run_until_complete(procpool::wait_for(call, 200ms)), procpool::TaskTimeout);
    REQUIRE(call.wait_for(10s));
    CHECK(call.cancelled());  // wait_for cancelled it, which stopped its worker
    CHECK(replaced(pool, first));
  }
  SUBCASE("TaskHandle::cancel") {
    pid_t first = pool.worker_pids().at(0);
    auto call = pool.submit(spin_forever, 0);
    auto outcome = loop.run_until_complete([&]() -> procpool::Task<std::string> {
      auto handle =
          loop.create_task([](procpool::Future<int> f) -> procpool::Task<int> { co_return co_await f; }(call));
      co_await procpool::sleep(100ms);
      handle.cancel();
      try {
        co_await handle;
      } catch (const procpool::TaskCancelled&) {
        co_return "cancelled";
      }
      co_return "finished";
    }());
    CHECK(outcome == "cancelled");
    REQUIRE(call.wait_for(10s));
    CHECK(call.cancelled());
    CHECK(replaced(pool, first));
  }
  CHECK(pool.submit(tasks::add, 1, 1).get() == 2);
}

TEST_CASE("Deadlines.CancelRunningFalseLetsItRunToItsEnd" * doctest::timeout(60)) {
  std::string path = temp_path("keep");
  for (bool per_pool : {true, false}) {
    auto options = one_worker();
    if (per_pool) options.cancel_running = false;
    procpool::ProcessPool pool(options);
    pid_t worker = pool.worker_pids().at(0);
    std::remove(path.c_str());
    auto running = per_pool ? pool.submit(record_then_sleep, path, 1, 300)
                            : pool.submit_with({.cancel_running = false}, record_then_sleep, path, 1, 300);
    REQUIRE(census::eventually([&] { return runs_in(path).count(1) == 1; }));
    CHECK_FALSE(running.cancel());
    CHECK(running.get() == 1);
    CHECK(pool.worker_pids().at(0) == worker);
  }
  std::remove(path.c_str());
}

TEST_CASE("Deadlines.CancelRacingCompletionFromSeveralThreadsSettlesEachFutureOnce" * doctest::timeout(60)) {
  std::string path = temp_path("race");
  constexpr int kCalls = 40;
  std::vector<std::atomic<int>> settled(kCalls), said_yes(kCalls);
  {
    procpool::ProcessPool pool({.workers = 2, .prefetch_per_worker = 2, .destructor_wait = 0ms});
    std::vector<procpool::Future<int>> calls;
    for (int i = 0; i < kCalls; ++i) {
      calls.push_back(pool.submit(record_then_sleep, path, i, 5 + i % 7));
      calls.back().then([&settled, i](procpool::Future<int>) { settled[i].fetch_add(1); });
    }
    // Not before a call has begun (a loaded machine may not have started
    // one by the time every cancel is made): some must hit running calls.
    REQUIRE(census::eventually([&] { return !runs_in(path).empty(); }, 10000ms));
    std::vector<std::thread> cancellers;
    for (int t = 0; t < 4; ++t)
      cancellers.emplace_back([&, t] {
        std::mt19937 rng(t);
        std::vector<int> order(kCalls);
        for (int i = 0; i < kCalls; ++i) order[i] = i;
        std::shuffle(order.begin(), order.end(), rng);
        std::this_thread::sleep_for(std::chrono::milliseconds(3 + t * 7));
        for (int i : order) {
          if (rng() % 3 == 0) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
          if (calls[i].cancel()) said_yes[i].fetch_add(1);
        }
      });
    for (auto& t : cancellers) t.join();
    int cancelled_while_running = 0;
    for (auto& f : calls) REQUIRE(f.wait_for(10s));
    auto runs = runs_in(path);
    for (int i = 0; i < kCalls; ++i) {
      CHECK(said_yes[i].load() <= 1);
      CHECK(calls[i].cancelled() == (said_yes[i].load() == 1));  // true exactly when TaskCancelled
      if (calls[i].cancelled()) {
        CHECK_THROWS_AS(calls[i].get(), procpool::TaskCancelled);
        cancelled_while_running += runs.count(i);
      } else {
        CHECK(calls[i].get() == i);
        CHECK(runs.count(i) == 1);
      }
      CHECK(runs[i] <= 1);  // never twice
    }
    CHECK(cancelled_while_running > 0);  // some cancels did stop a running call
    CHECK(census::eventually([&] {
      for (auto& s : settled)
        if (s.load() != 1) return false;
      return true;
    }));
  }
  std::remove(path.c_str());
}
