// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <signal.h>

#include <boost/asio/post.hpp>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <set>
#include <thread>

#include "support/census.hpp"
#include "support/task_functions.hpp"

TEST_CASE("Shutdown.WaitLetsQueuedAndRunningCallsFinish" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 2});
  std::vector<procpool::Future<double>> fs;
  for (int i = 0; i < 6; ++i) fs.push_back(pool.submit(tasks::sleep_ms, 50));
  pool.shutdown(true);
  for (auto& f : fs) CHECK(f.get() == 50);
}

namespace {
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Sleeps `ms` with SIGTERM ignored: only SIGKILL ends it early.
double ignore_sigterm_and_sleep(int ms) {
  ::signal(SIGTERM, SIG_IGN);
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
PROCPOOL_REGISTER(ignore_sigterm_and_sleep);

// Where a shutdown form is called from.
enum class From { MainThread, AnotherThread, Callback };
const char* name_of(From from) {
  return from == From::MainThread ? "main thread" : from == From::AnotherThread ? "another thread" : "a callback";
}

// Runs `act` from `from` and returns how long it took. From a callback: a
// handler the pool runs on its own thread (posted to its executor, where
// async_call's handlers and then() callbacks run), so that it does not wait
// for a worker; Shutdown.EveryFormFromAThenCallback uses then() itself.
template <class Act>
Clock::duration act_from(From from, procpool::ProcessPool& pool, Act act) {
  std::atomic<long long> took{-1};
  auto timed = [&] {
    auto t0 = Clock::now();
    act();
    took = (Clock::now() - t0).count();
  };
  if (from == From::MainThread) timed();
  else if (from == From::AnotherThread) std::thread(timed).join();
  else {
    boost::asio::post(pool.get_executor(), timed);
    REQUIRE(census::eventually([&] { return took.load() >= 0; }));
  }
  return Clock::duration(took.load());
}

// Runs fn(id) once: appends `id` to `path`, then sleeps `ms`.
double record_and_sleep(std::string path, int id, int ms) {
  tasks::record_run(path, id);
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return id;
}
PROCPOOL_REGISTER(record_and_sleep);

std::set<int> ids_recorded(const std::string& path) {
  std::set<int> ids;
  std::ifstream in(path);
  for (int id; in >> id;) ids.insert(id);
  return ids;
}
}  // namespace

TEST_CASE("Shutdown.WithoutWaitReturnsAtOnceAndTheRunningCallsStillSucceed" * doctest::timeout(60)) {
  for (From from : {From::MainThread, From::AnotherThread, From::Callback}) {
    CAPTURE(name_of(from));
    census::Snapshot before;
    size_t threads = census::thread_count();
    {
      procpool::ProcessPool pool({.workers = 2});
      std::vector<procpool::Future<double>> calls;
      for (int i = 0; i < 2; ++i) calls.push_back(pool.submit(tasks::sleep_ms, 5000));
      auto queued = pool.submit(tasks::sleep_ms, 10);  // behind one of them: accepted, so it runs too
      std::this_thread::sleep_for(50ms);               // both 5 s calls are running
      auto took = act_from(from, pool, [&] { pool.shutdown({.wait = false}); });
      CHECK(took < 10ms);
      CHECK_THROWS_AS(pool.submit(tasks::add, 1, 2).get(), procpool::PoolShutdown);
      for (auto& f : calls) CHECK(f.get() == 5000);
      CHECK(queued.get() == 10);
      // The pool's own thread stops and reaps the workers: nobody waits for it.
      CHECK(census::eventually([&] { return pool.worker_pids().empty() && census::children().empty(); }));
    }
    CHECK(census::leaks_since(before) == "");
    CHECK(census::thread_count() == threads);
  }
}

TEST_CASE("Shutdown.DestroyingThePoolAfterAShutdownWithoutWaitWaitsForTheCallsAndLeaksNothing" * doctest::timeout(60)) {
  census::Snapshot before;
  size_t threads = census::thread_count();
  procpool::Future<double> f;
  {
    procpool::ProcessPool pool({.workers = 2});
    f = pool.submit(tasks::sleep_ms, 300);
    std::this_thread::sleep_for(20ms);
    pool.shutdown({.wait = false});
  }  // the destructor waits for the call, as it does by default
  CHECK(f.ready());
  CHECK(f.get() == 300);
  CHECK(census::leaks_since(before) == "");
  CHECK(census::thread_count() == threads);
}

TEST_CASE("Shutdown.WaitAfterAShutdownWithoutWaitWaitsForTheEnd" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1});
  auto f = pool.submit(tasks::sleep_ms, 300);
  std::this_thread::sleep_for(20ms);
  pool.shutdown({.wait = false});
  pool.shutdown({.wait = false});  // idempotent
  pool.shutdown();                 // waits for the call and the reaping
  CHECK(f.ready());
  CHECK(pool.worker_pids().empty());
  CHECK(census::children().empty());
}

TEST_CASE("Shutdown.CancelFuturesFailsExactlyTheCallsNotBegun" * doctest::timeout(60)) {
  for (bool wait : {true, false})
    for (From from : {From::MainThread, From::AnotherThread, From::Callback}) {
      if (wait && from == From::Callback) continue;  // wait = true throws there (FromACallbackIsRefused...)
      CAPTURE(wait);
      CAPTURE(name_of(from));
      std::string path = "/tmp/procpool_cancel_futures_" + std::to_string(::getpid());
      std::remove(path.c_str());
      // Two per worker: one running and one in its ring; the rest in the pool's queue.
      procpool::ProcessPool pool({.workers = 2, .prefetch_per_worker = 2});
      std::vector<procpool::Future<double>> running, waiting;
      for (int i = 0; i < 2; ++i) running.push_back(pool.submit(record_and_sleep, path, 100 + i, 400));
      for (int i = 0; i < 8; ++i) waiting.push_back(pool.submit(record_and_sleep, path, i, 1));
      REQUIRE(census::eventually([&] { return ids_recorded(path).size() == 2; }));  // both have begun
      auto took = act_from(from, pool, [&] { pool.shutdown({.wait = wait, .cancel_futures = true}); });
      if (!wait) CHECK(took < 10ms);
      for (auto& f : waiting) {
        CHECK(f.ready());  // at once, whether or not shutdown waits
        CHECK_THROWS_WITH_AS(f.get(), doctest::Contains("cancel_futures"), procpool::TaskCancelled);
      }
      for (auto& f : running) CHECK(f.get() >= 100);
      if (wait) CHECK(pool.worker_pids().empty());
      pool.shutdown();
      CHECK(ids_recorded(path) == std::set<int>{100, 101});  // no cancelled call ran
      std::remove(path.c_str());
    }
}

TEST_CASE("Shutdown.EveryFormFromAThenCallback" * doctest::timeout(60)) {
  enum Form { WithoutWait, CancelFutures, Terminate, Kill };
  for (Form form : {WithoutWait, CancelFutures, Terminate, Kill}) {
    CAPTURE(form);
    census::Snapshot before;
    {
      procpool::ProcessPool pool({.workers = 2, .shutdown_grace = 300ms});
      auto slow = pool.submit(tasks::sleep_ms, 400);  // one worker runs it
      std::this_thread::sleep_for(20ms);
      std::atomic<bool> done{false};
      std::exception_ptr error;
      pool.submit(tasks::add, 1, 1).then([&](procpool::Future<int>) {  // the other worker answers
        try {
          if (form == WithoutWait) pool.shutdown({.wait = false});
          else if (form == CancelFutures) pool.shutdown({.wait = false, .cancel_futures = true});
          else if (form == Terminate) pool.terminate();
          else pool.kill();
        } catch (...) {
          error = std::current_exception();
        }
        done = true;
      });
      REQUIRE(census::eventually([&] { return done.load(); }));
      CHECK(error == nullptr);
      if (form == WithoutWait || form == CancelFutures) CHECK(slow.get() == 400);
      else CHECK_THROWS_AS(slow.get(), procpool::PoolShutdown);
      CHECK_THROWS_AS(pool.submit(tasks::add, 1, 2).get(), procpool::PoolShutdown);
      CHECK(census::eventually([&] { return pool.worker_pids().empty() && census::children().empty(); }));
    }
    CHECK(census::leaks_since(before) == "");
  }
}

TEST_CASE("Shutdown.TerminateFailsRunningAndPendingCallsWithinTheGrace" * doctest::timeout(60)) {
  for (From from : {From::MainThread, From::AnotherThread, From::Callback}) {
    CAPTURE(name_of(from));
    census::Snapshot before;
    {
      procpool::ProcessPool pool({.workers = 2, .shutdown_grace = 300ms});
      auto obeys = pool.submit(tasks::sleep_ms, 5000);              // dies of SIGTERM
      auto stubborn = pool.submit(ignore_sigterm_and_sleep, 5000);  // needs the SIGKILL
      auto queued = pool.submit(tasks::sleep_ms, 5000);
      // Both running, and the stubborn one past installing its handler.
      REQUIRE(census::eventually([&] { return obeys.running() && stubborn.running(); }, 30s));
      std::this_thread::sleep_for(100ms);
      auto t0 = Clock::now();
      auto took = act_from(from, pool, [&] { pool.terminate(); });
      if (from == From::Callback) CHECK(took < 10ms);  // the pool's thread finishes once the callback returns
      else CHECK(took >= 300ms);                       // the stubborn worker had its grace
      for (auto* f : {&obeys, &stubborn, &queued})
        CHECK_THROWS_WITH_AS(f->get(), doctest::Contains("shut down"), procpool::PoolShutdown);
      CHECK(census::eventually([&] { return census::children().empty(); }));
      CHECK(Clock::now() - t0 < 1300ms);  // the grace, plus slack: not the 5 s calls
      CHECK_THROWS_AS(pool.submit(tasks::add, 1, 2).get(), procpool::PoolShutdown);
      pool.terminate();  // idempotent
    }
    CHECK(census::leaks_since(before) == "");
  }
}

TEST_CASE("Shutdown.KillStopsEveryWorkerAtOnce" * doctest::timeout(60)) {
  for (From from : {From::MainThread, From::AnotherThread, From::Callback}) {
    CAPTURE(name_of(from));
    procpool::ProcessPool pool({.workers = 2, .shutdown_grace = 5000ms});
    auto stubborn = pool.submit(ignore_sigterm_and_sleep, 5000);
    auto queued = pool.submit(tasks::sleep_ms, 5000);
    std::this_thread::sleep_for(100ms);
    auto t0 = Clock::now();
    act_from(from, pool, [&] { pool.kill(); });
    CHECK_THROWS_AS(stubborn.get(), procpool::PoolShutdown);
    CHECK_THROWS_AS(queued.get(), procpool::PoolShutdown);
    CHECK(census::eventually([&] { return census::children().empty(); }));
    CHECK(Clock::now() - t0 < 1000ms);  // no grace
    pool.kill();
    pool.shutdown();
    CHECK_THROWS_AS(pool.submit(tasks::add, 1, 2).get(), procpool::PoolShutdown);
  }
}

TEST_CASE("Shutdown.TerminateCutsAShutdownWithoutWaitShort" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1, .shutdown_grace = 300ms});
  auto f = pool.submit(tasks::sleep_ms, 5000);
  std::this_thread::sleep_for(50ms);
  auto t0 = Clock::now();
  pool.shutdown({.wait = false});
  pool.terminate();
  CHECK(Clock::now() - t0 < 1000ms);
  CHECK_THROWS_AS(f.get(), procpool::PoolShutdown);
  CHECK(pool.worker_pids().empty());
}

TEST_CASE("Shutdown.TheDestructorDoesNotHangOnAStuckWorker" * doctest::timeout(60)) {
  census::Snapshot before;
  procpool::Future<double> stopped_running, stubborn;
  auto t0 = Clock::now();
  {
    procpool::ProcessPool pool(
        {.workers = 3, .shutdown_grace = 300ms, .destructor_wait = std::chrono::milliseconds(200)});
    stopped_running = pool.submit(tasks::sleep_ms, 5000);
    stubborn = pool.submit(ignore_sigterm_and_sleep, 5000);
    std::this_thread::sleep_for(100ms);
    auto pids = pool.worker_pids();
    REQUIRE(pids.size() == 3);
    // Every worker SIGSTOPped (two running, one idle): none can read a Stop
    // frame or act on SIGTERM; the stubborn one ignores SIGTERM besides.
    for (pid_t p : pids) ::kill(p, SIGSTOP);
  }
  auto took = Clock::now() - t0;
  CHECK(took < 2000ms);  // destructor_wait, then the grace, then SIGKILL
  CHECK_THROWS_AS(stopped_running.get(), procpool::PoolShutdown);
  CHECK_THROWS_AS(stubborn.get(), procpool::PoolShutdown);
  CHECK(census::leaks_since(before) == "");
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
