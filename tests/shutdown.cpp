// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include "support/census.hpp"
#include "support/task_functions.hpp"

TEST_CASE("Shutdown.WaitLetsQueuedAndRunningCallsFinish" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 2});
  std::vector<procpool::Future<double>> fs;
  for (int i = 0; i < 6; ++i) fs.push_back(pool.submit(tasks::sleep_ms, 50));
  pool.shutdown(true);
  for (auto& f : fs) CHECK(f.get() == 50);
}

TEST_CASE("Shutdown.WithoutWaitFailsPendingCallsWithPoolShutdown" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1});
  auto running = pool.submit(tasks::sleep_ms, 5000);
  auto queued = pool.submit(tasks::add, 1, 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto t0 = std::chrono::steady_clock::now();
  pool.shutdown(false);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(4));  // did not wait for the 5 s task
  CHECK_THROWS_AS(running.get(), procpool::PoolShutdown);
  CHECK_THROWS_AS(queued.get(), procpool::PoolShutdown);
}

TEST_CASE("Shutdown.TheDestructorWaitsForSubmittedCalls" * doctest::timeout(60)) {
  // A program that submits and leaves the pool's scope gets its results,
  // as with Python's `with ProcessPoolExecutor()`.
  std::vector<procpool::Future<double>> fs;
  {
    procpool::ProcessPool pool({.workers = 1});
    for (int i = 0; i < 3; ++i) fs.push_back(pool.submit(tasks::sleep_ms, 100));
  }
  for (auto& f : fs) CHECK(f.get() == 100);
}

TEST_CASE("Shutdown.TheDestructorWaitsNoLongerThanDestructorWait" * doctest::timeout(60)) {
  procpool::Future<double> quick, slow, queued;
  auto t0 = std::chrono::steady_clock::now();
  {
    procpool::ProcessPool pool({.workers = 2, .destructor_wait = std::chrono::milliseconds(300)});
    quick = pool.submit(tasks::sleep_ms, 50);
    slow = pool.submit(tasks::sleep_ms, 10000);
    queued = pool.submit(tasks::sleep_ms, 10000);
  }
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(took >= std::chrono::milliseconds(300));
  CHECK(took < std::chrono::seconds(5));  // 300 ms, then SIGTERM: not the 10 s tasks
  CHECK(quick.get() == 50);
  CHECK_THROWS_WITH_AS(slow.get(), doctest::Contains("shut down"), procpool::PoolShutdown);
  CHECK_THROWS_AS(queued.get(), procpool::PoolShutdown);
}

TEST_CASE("Shutdown.ADestructorWaitOfZeroFailsPendingCallsAtOnce" * doctest::timeout(60)) {
  procpool::Future<double> f;
  auto t0 = std::chrono::steady_clock::now();
  {
    procpool::ProcessPool pool({.workers = 1, .destructor_wait = std::chrono::milliseconds(0)});
    f = pool.submit(tasks::sleep_ms, 5000);
  }
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(4));
  CHECK_THROWS_WITH_AS(f.get(), doctest::Contains("shut down"), procpool::PoolShutdown);
}

TEST_CASE("Shutdown.CallsAfterShutdownFailAtOnce" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1});
  pool.shutdown();
  pool.shutdown();  // idempotent
  CHECK_THROWS_AS(pool.submit(tasks::add, 1, 2).get(), procpool::PoolShutdown);
  CHECK_THROWS_AS(pool.call<int>("add", 1, 2).get(), procpool::PoolShutdown);
}

TEST_CASE("Shutdown.LeavesNoFdsShmNamesOrChildren" * doctest::timeout(60)) {
  census::Snapshot before;
  {
    procpool::ProcessPool pool({.workers = 3});
    std::vector<procpool::Future<int>> fs;
    for (int i = 0; i < 200; ++i) fs.push_back(pool.submit(tasks::identity, i));
    auto crashed = pool.submit(tasks::crash, std::string("abort"));
    for (auto& f : fs) f.get();
    CHECK_THROWS_AS(crashed.get(), procpool::WorkerCrashed);
    pool.submit(tasks::sleep_ms, 2000);  // still running at shutdown
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Shutdown.IdleWorkersExitCleanly" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 2});
  auto pids = pool.worker_pids();
  auto t0 = std::chrono::steady_clock::now();
  pool.shutdown();
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(1));  // no grace period spent
  for (pid_t p : pids) CHECK_FALSE(census::process_exists(p));
}

TEST_CASE("Shutdown.FromACallbackIsRefusedNotDeadlocked" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1});
  std::atomic<bool> refused{false};
  pool.submit(tasks::sleep_ms, 20).then([&](procpool::Future<double>) {
    try {
      pool.shutdown();
    } catch (const procpool::Error&) {
      refused = true;
    }
  });
  CHECK(census::eventually([&] { return refused.load(); }));
}

TEST_CASE("Shutdown.DestroyingThePoolInItsOwnCallbackFinishesCleanly" * doctest::timeout(60)) {
  census::Snapshot before;
  auto pool = std::make_unique<procpool::ProcessPool>(procpool::PoolOptions{.workers = 2});
  auto pending = pool->submit(tasks::sleep_ms, 5000);
  std::atomic<bool> destroyed{false};
  pool->submit(tasks::add, 1, 1).then([&](procpool::Future<int>) {
    pool.reset();  // on the pool's own thread
    destroyed = true;
  });
  CHECK(census::eventually([&] { return destroyed.load(); }));
  CHECK_THROWS_AS(pending.get(), procpool::PoolShutdown);
  CHECK(census::eventually([&] { return census::leaks_since(before).empty(); }));
}

namespace {
__attribute__((no_sanitize("undefined"))) int crash_after_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  volatile int* p = nullptr;
  *p = 1;
  return 0;
}
PROCPOOL_REGISTER(crash_after_ms);
}  // namespace

TEST_CASE("Shutdown.AWorkerThatDiesWhileTheLastCallsFinishIsNotReplaced" * doctest::timeout(60)) {
  census::Snapshot before;
  {
    procpool::ProcessPool pool({.workers = 2});
    auto crashing = pool.submit(crash_after_ms, 100);
    auto slow = pool.submit(tasks::sleep_ms, 800);
    std::thread closer([&] { pool.shutdown(true); });
    CHECK_THROWS_AS(crashing.get(), procpool::WorkerCrashed);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    CHECK(pool.worker_pids().size() == 1);  // nothing was left for a replacement to do
    CHECK(slow.get() == 800);
    closer.join();
    CHECK(pool.worker_pids().empty());
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Shutdown.ADestructorReachedByAnExceptionDoesNotWait" * doctest::timeout(60)) {
  procpool::Future<double> f;
  auto t0 = std::chrono::steady_clock::now();
  try {
    procpool::ProcessPool pool({.workers = 1});
    f = pool.submit(tasks::sleep_ms, 5000);
    throw std::runtime_error("the caller failed");
  } catch (const std::runtime_error&) {
  }
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(4));
  CHECK_THROWS_AS(f.get(), procpool::PoolShutdown);
}
