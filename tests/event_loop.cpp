// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "support/census.hpp"
#include "support/task_functions.hpp"

using namespace std::chrono_literals;
using procpool::Task;

namespace {

Task<int> add_in_pool(procpool::EventLoop& loop, procpool::ProcessPool& pool, int a, int b) {
  co_return co_await loop.run_in_executor(pool, tasks::add, a, b);
}

Task<int> inner_throws() {
  co_await procpool::sleep(1ms);
  throw std::domain_error("from the inner task");
}
Task<int> middle() { co_return co_await inner_throws() + 1; }

Task<void> sleeper(std::atomic<int>& stage) {
  stage = 1;
  co_await procpool::sleep(10s);
  stage = 2;
}

}  // namespace

TEST_CASE("EventLoop.RunUntilCompleteReturnsThePoolResult" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 2});
  procpool::EventLoop loop;
  CHECK(loop.run_until_complete(add_in_pool(loop, pool, 20, 22)) == 42);
  CHECK(loop.run_until_complete(
            [&]() -> Task<int> { co_return co_await loop.run_in_executor<int>(pool, "add", 1, 2); }()) == 3);
}

TEST_CASE("EventLoop.ExceptionsPropagateThroughNestedTasks" * doctest::timeout(30)) {
  procpool::EventLoop loop;
  CHECK_THROWS_WITH_AS(loop.run_until_complete(middle()), "from the inner task", std::domain_error);
}

TEST_CASE("EventLoop.PoolExceptionsArriveInTheCoroutine" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  procpool::EventLoop loop;
  auto task = [&]() -> Task<std::string> {
    try {
      co_await loop.run_in_executor(pool, tasks::throw_kind, std::string("invalid_argument"));
    } catch (const std::invalid_argument& e) {
      co_return e.what();
    }
    co_return "no exception";
  };
  CHECK(loop.run_until_complete(task()) == "bad argument");
}

TEST_CASE("EventLoop.CoroutinesResumeOnTheLoopThread" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  procpool::EventLoop loop;
  auto task = [&]() -> Task<bool> {
    co_await loop.run_in_executor(pool, tasks::sleep_ms, 20);
    co_return std::this_thread::get_id() == std::this_thread::get_id();
  };
  std::thread::id resumed_on;
  loop.run_until_complete([&]() -> Task<void> {
    co_await loop.run_in_executor(pool, tasks::sleep_ms, 20);
    resumed_on = std::this_thread::get_id();
  }());
  CHECK(resumed_on == std::this_thread::get_id());
  CHECK(loop.run_until_complete(task()));
}

TEST_CASE("EventLoop.DefaultExecutorRunsBlockingCallablesOnThreads" * doctest::timeout(30)) {
  procpool::EventLoop loop;
  auto main_thread = std::this_thread::get_id();
  auto ran_on = loop.run_until_complete([&]() -> Task<std::thread::id> {
    co_return co_await loop.run_in_executor(nullptr, [] {
      std::this_thread::sleep_for(10ms);
      return std::this_thread::get_id();
    });
  }());
  CHECK(ran_on != main_thread);
  CHECK_THROWS_AS(loop.run_until_complete([&]() -> Task<int> {
    co_return co_await loop.run_in_executor(nullptr, []() -> int { throw std::range_error("thread"); });
  }()),
                  std::range_error);
}

TEST_CASE("EventLoop.CreateTaskAndCancelThrowsAtTheAwaitPoint" * doctest::timeout(30)) {
  procpool::EventLoop loop;
  std::atomic<int> stage{0};
  auto outcome = loop.run_until_complete([&]() -> Task<std::string> {
    auto handle = loop.create_task(sleeper(stage));
    co_await procpool::sleep(20ms);
    CHECK(stage == 1);
    handle.cancel();
    try {
      co_await handle;
    } catch (const procpool::TaskCancelled&) {
      co_return "cancelled";
    }
    co_return "finished";
  }());
  CHECK(outcome == "cancelled");
  CHECK(stage == 1);
}

TEST_CASE("EventLoop.GatherGivesResultsInOrder" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 2});
  procpool::EventLoop loop;
  auto [a, b, c] = loop.run_until_complete(
      procpool::gather(pool.submit(tasks::sleep_ms, 60), pool.submit(tasks::add, 1, 2), add_in_pool(loop, pool, 3, 4)));
  CHECK(a == 60);
  CHECK(b == 3);
  CHECK(c == 7);
  std::vector<procpool::Future<int>> fs;
  for (int i = 0; i < 50; ++i) fs.push_back(pool.submit(tasks::identity, i));
  auto all = loop.run_until_complete(procpool::gather(std::move(fs)));
  REQUIRE(all.size() == 50);
  for (int i = 0; i < 50; ++i) CHECK(all[static_cast<size_t>(i)] == i);
}

TEST_CASE("EventLoop.GatherPropagatesTheFirstErrorAndCancelsTheRest" * doctest::timeout(30)) {
  procpool::EventLoop loop;
  std::atomic<int> stage{0};
  auto fails = []() -> Task<int> {
    co_await procpool::sleep(10ms);
    throw std::out_of_range("first failure");
  };
  CHECK_THROWS_WITH_AS(loop.run_until_complete(procpool::gather(sleeper(stage), fails())), "first failure",
                       std::out_of_range);
  // The sleeper was cancelled at its 10 s sleep: it never reached stage 2,
  // and run_until_complete did not wait 10 s for it.
  loop.run_until_complete([]() -> Task<void> { co_await procpool::sleep(10ms); }());
  CHECK(stage == 1);
}

TEST_CASE("EventLoop.GatherWithReturnExceptionsGivesEachOutcome" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 2});
  procpool::EventLoop loop;
  auto [ok, failed, crashed] = loop.run_until_complete(procpool::gather(
      procpool::return_exceptions, pool.submit(tasks::add, 2, 3), pool.submit(tasks::throw_kind, std::string("quota")),
      pool.submit(tasks::crash, std::string("segv"))));
  CHECK(ok.value() == 5);
  CHECK_THROWS_AS(failed.value(), tasks::QuotaExceeded);
  CHECK_THROWS_AS(crashed.value(), procpool::WorkerCrashed);
}

TEST_CASE("EventLoop.WaitForTimesOutAndDropsAQueuedCall" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1, .prefetch_per_worker = 1});
  procpool::EventLoop loop;
  std::string path = "/tmp/procpool-test-wait-for-" + std::to_string(getpid());
  std::remove(path.c_str());
  auto busy = pool.submit(tasks::sleep_ms, 300);          // the worker is busy...
  auto queued = pool.submit(tasks::record_run, path, 7);  // ...so this waits in the pool's queue
  CHECK_THROWS_AS(loop.run_until_complete(procpool::wait_for(queued, 50ms)), procpool::TaskTimeout);
  CHECK_THROWS_AS(queued.get(), procpool::TaskCancelled);  // dropped before it started
  CHECK(busy.get() == 300);
  CHECK(pool.submit(tasks::add, 1, 1).get() == 2);
  CHECK_FALSE(std::ifstream(path).good());  // never ran
  std::remove(path.c_str());
}

TEST_CASE("EventLoop.WaitForOnARunningCallTimesOut" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  procpool::EventLoop loop;
  auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH_AS(loop.run_until_complete(procpool::wait_for(pool.submit(tasks::sleep_ms, 500), 30ms)),
                       "wait_for: no result within 30 ms", procpool::TaskTimeout);
  CHECK(std::chrono::steady_clock::now() - start < 400ms);
  CHECK(loop.run_until_complete(procpool::wait_for(pool.submit(tasks::add, 1, 2), 5s)) == 3);
  // The longest timeouts are no limit, not an overflow into the past.
  CHECK(loop.run_until_complete(procpool::wait_for(pool.submit(tasks::sleep_ms, 20), std::chrono::hours::max())) == 20);
  CHECK(loop.run_until_complete(procpool::wait_for(pool.submit(tasks::add, 2, 2), std::chrono::seconds::max())) == 4);
}

TEST_CASE("EventLoop.CallSoonCallLaterAndTime" * doctest::timeout(30)) {
  procpool::EventLoop loop;
  std::vector<int> order;
  double t0 = loop.time();
  loop.call_later(30ms, [&] {
    order.push_back(2);
    loop.stop();
  });
  auto cancelled = loop.call_later(10ms, [&] { order.push_back(99); });
  cancelled.cancel();
  std::thread([&] { loop.call_soon([&] { order.push_back(1); }); }).join();
  loop.run_forever();
  CHECK(order == std::vector<int>{1, 2});
  CHECK(loop.time() - t0 >= 0.025);
}

TEST_CASE("EventLoop.DestroyingTheLoopFailsUnfinishedTasks" * doctest::timeout(30)) {
  std::atomic<int> stage{0};
  std::optional<procpool::TaskHandle<void>> orphan;  // outlives the loop
  std::optional<procpool::EventLoop::TimerHandle> timer;
  {
    procpool::EventLoop loop;
    orphan.emplace(loop.create_task(sleeper(stage)));
    timer.emplace(loop.call_later(10s, [] {}));
    loop.run_until_complete([]() -> Task<void> { co_await procpool::sleep(5ms); }());
  }
  CHECK(stage == 1);
  CHECK_THROWS_AS(orphan->future().get(), procpool::TaskCancelled);
  orphan->cancel();  // harmless once the loop is gone
  timer->cancel();
  orphan.reset();
  timer.reset();
}

TEST_CASE("EventLoop.WaitFirstCompletedSplitsDoneAndPending" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 2});
  procpool::EventLoop loop;
  std::vector<procpool::Future<double>> fs{pool.submit(tasks::sleep_ms, 400), pool.submit(tasks::sleep_ms, 10)};
  auto result = loop.run_until_complete(procpool::wait(fs, procpool::FIRST_COMPLETED));
  REQUIRE(result.done.size() == 1);
  REQUIRE(result.pending.size() == 1);
  CHECK(result.done[0].get() == 10);
  auto all = loop.run_until_complete(procpool::wait(result.pending, procpool::ALL_COMPLETED));
  CHECK(all.done.size() == 1);
  CHECK(all.pending.empty());
  auto timed = loop.run_until_complete(procpool::wait(std::vector{pool.submit(tasks::sleep_ms, 300)},
                                                      procpool::ALL_COMPLETED, std::chrono::milliseconds(20)));
  CHECK(timed.done.empty());
  CHECK(timed.pending.size() == 1);
  // The longest timeout is no limit.
  auto unlimited = loop.run_until_complete(procpool::wait(std::vector{pool.submit(tasks::sleep_ms, 30)},
                                                          procpool::ALL_COMPLETED, std::chrono::hours::max()));
  CHECK(unlimited.done.size() == 1);
  CHECK(unlimited.pending.empty());
}

TEST_CASE("EventLoop.WaitFirstExceptionReturnsOnTheFailure" * doctest::timeout(30)) {
  // The hung call is still pending when the pool goes: its destructor must not wait for it.
  procpool::ProcessPool pool({.workers = 2, .destructor_wait = std::chrono::milliseconds(0)});
  procpool::EventLoop loop;
  std::vector<procpool::Future<int>> fs{pool.submit(tasks::crash, std::string("hang")),
                                        pool.submit(tasks::throw_kind, std::string("runtime_error"))};
  auto result = loop.run_until_complete(procpool::wait(fs, procpool::FIRST_EXCEPTION));
  REQUIRE(result.done.size() == 1);
  CHECK_THROWS_AS(result.done[0].get(), std::runtime_error);
  CHECK(result.pending.size() == 1);
}

TEST_CASE("EventLoop.WaitFirstExceptionTakesACancelledFutureAsDoneNotRaised" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1, .prefetch_per_worker = 1});
  procpool::EventLoop loop;
  auto running = pool.submit(tasks::sleep_ms, 200);
  auto queued = pool.submit(tasks::sleep_ms, 1);  // waits in the pool's queue behind it
  REQUIRE(queued.cancel());
  REQUIRE(queued.cancelled());
  auto result = loop.run_until_complete(procpool::wait(std::vector{queued, running}, procpool::FIRST_EXCEPTION));
  CHECK(result.done.size() == 2);  // it returned only when the running call was done too
  CHECK(result.pending.empty());
  CHECK(running.get() == 200);
}

TEST_CASE("EventLoop.AsCompletedYieldsAFutureGivenTwiceOnce" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 2});
  procpool::EventLoop loop;
  auto a = pool.submit(tasks::sleep_ms, 10);
  auto b = pool.submit(tasks::sleep_ms, 20);
  auto seen = loop.run_until_complete([&]() -> Task<std::vector<double>> {
    procpool::as_completed completed(std::vector{a, b, a});
    CHECK(completed.size() == 2);
    std::vector<double> values;
    while (!completed.empty()) values.push_back((co_await completed.next()).get());
    co_return values;
  }());
  // Each once; in either order (a spawned worker under a sanitizer may
  // start late, and the 10 ms call finish after the 20 ms one).
  std::sort(seen.begin(), seen.end());
  CHECK(seen == std::vector<double>{10, 20});
}

TEST_CASE("EventLoop.AsCompletedYieldsInCompletionOrder" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 3});
  procpool::EventLoop loop;
  auto order = loop.run_until_complete([&]() -> Task<std::vector<double>> {
    procpool::as_completed completed(std::vector{pool.submit(tasks::sleep_ms, 300), pool.submit(tasks::sleep_ms, 10),
                                                 pool.submit(tasks::sleep_ms, 150)});
    std::vector<double> seen;
    while (!completed.empty()) seen.push_back((co_await completed.next()).get());
    co_return seen;
  }());
  CHECK(order == std::vector<double>{10, 150, 300});
}

TEST_CASE("EventLoop.ShieldKeepsTheInnerWorkGoing" * doctest::timeout(30)) {
  procpool::EventLoop loop;
  std::atomic<int> stage{0};
  auto inner = [&]() -> Task<int> {
    co_await procpool::sleep(std::chrono::milliseconds(50));
    stage = 2;
    co_return 7;
  };
  auto outer = loop.create_task(procpool::shield(inner()));
  auto outcome = loop.run_until_complete([&]() -> Task<std::string> {
    co_await procpool::sleep(std::chrono::milliseconds(5));
    outer.cancel();
    bool cancelled = false;
    try {
      co_await outer;
    } catch (const procpool::TaskCancelled&) {
      cancelled = true;
    }
    co_await procpool::sleep(std::chrono::milliseconds(100));  // the inner task goes on meanwhile
    co_return cancelled ? "outer cancelled" : "outer finished";
  }());
  CHECK(outcome == "outer cancelled");
  CHECK(stage == 2);
}

namespace {
Task<void> pool_owner(procpool::EventLoop& loop, int report_fd) {
  procpool::ProcessPool pool({.workers = 2});
  auto pids = pool.worker_pids();
  (void)!write(report_fd, pids.data(), pids.size() * sizeof(pid_t));
  co_await loop.run_in_executor(pool, tasks::sleep_ms, 60'000);
}
}  // namespace

TEST_CASE("EventLoop.CtrlCCancelsTheMainTaskAndStopsThePool" * doctest::timeout(60)) {
  // A child process runs a loop whose main task owns a pool busy for a
  // minute; SIGINT must end it promptly, with KeyboardInterrupt, and leave
  // no worker behind.
  REQUIRE(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    close(fds[0]);
    procpool::init(0, nullptr);  // a zygote of its own, for forkserver pools
    int code = 3;
    try {
      procpool::EventLoop loop;
      loop.run_until_complete(pool_owner(loop, fds[1]));
    } catch (const procpool::KeyboardInterrupt&) {
      code = 0;
    } catch (...) {
      code = 4;
    }
    _exit(code);
  }
  close(fds[1]);
  pid_t workers[2] = {0, 0};
  REQUIRE(read(fds[0], workers, sizeof workers) == sizeof workers);
  close(fds[0]);
  std::this_thread::sleep_for(50ms);  // the task is now awaiting the minute-long call
  auto sent = std::chrono::steady_clock::now();
  ::kill(child, SIGINT);
  int status = -1;
  bool exited = census::eventually([&] { return waitpid(child, &status, WNOHANG) == child; }, 10s);
  REQUIRE(exited);
  CHECK(std::chrono::steady_clock::now() - sent < 5s);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(census::eventually([&] { return census::orphans_gone({workers[0], workers[1]}); }));
  prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST_CASE("EventLoop.ShieldedPoolCallIsNotDropped" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1, .prefetch_per_worker = 1});
  procpool::EventLoop loop;
  auto busy = pool.submit(tasks::sleep_ms, 100);
  auto queued = pool.submit(tasks::add, 2, 3);  // still in the pool's queue
  auto outer = loop.create_task(procpool::shield(queued));
  loop.run_until_complete([&]() -> Task<void> {
    co_await procpool::sleep(std::chrono::milliseconds(5));
    outer.cancel();
    try {
      co_await outer;
    } catch (const procpool::TaskCancelled&) {
    }
  }());
  CHECK(queued.get() == 5);  // the shielded call still ran
  CHECK(busy.get() == 100);
}

// asyncio's `await wait_for(shield(task), t)`, then `await task`: the
// shield leaves the call's result in its Future for the other holders.
TEST_CASE("EventLoop.AShieldedCallsResultStaysInItsFutureAfterATimeoutAndAfterTheShield" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  procpool::EventLoop loop;
  auto slow = pool.submit(tasks::sleep_ms, 200);
  auto quick = pool.submit(tasks::add, 2, 3);
  auto failing = pool.submit(tasks::throw_kind, std::string("invalid_argument"));
  loop.run_until_complete([&]() -> Task<void> {
    CHECK_THROWS_AS(co_await procpool::wait_for(procpool::shield(slow), 20ms), procpool::TaskTimeout);
    CHECK(co_await slow == 200);  // the call went on, and its value is still there
    CHECK(co_await procpool::shield(quick) == 5);
    CHECK(co_await quick == 5);
    CHECK_THROWS_AS(co_await procpool::shield(failing), std::invalid_argument);
    CHECK_THROWS_AS(co_await failing, std::invalid_argument);
  }());
}

TEST_CASE("EventLoop.GatherOfTwentyThousandFutures" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 2});
  procpool::EventLoop loop;
  std::vector<procpool::Future<int>> fs;
  for (int i = 0; i < 20'000; ++i) fs.push_back(pool.submit(tasks::identity, i));
  auto all = loop.run_until_complete(procpool::gather(std::move(fs)));
  CHECK(all.size() == 20'000);
  long long wrong = 0;
  for (int i = 0; i < 20'000; ++i) wrong += all[static_cast<size_t>(i)] != i;
  CHECK(wrong == 0);
}

TEST_CASE("EventLoop.CallSoonFromManyThreadsRunsEveryCallbackOnTheLoop" * doctest::timeout(30)) {
  procpool::EventLoop loop;
  constexpr int kThreads = 8, kEach = 1000;
  int count = 0;  // only touched on the loop thread
  bool all_on_loop = true;
  auto loop_thread = std::this_thread::get_id();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i)
        loop.call_soon([&] {
          all_on_loop &= std::this_thread::get_id() == loop_thread;
          if (++count == kThreads * kEach) loop.stop();
        });
    });
  loop.run_forever();
  for (auto& t : threads) t.join();
  CHECK(count == kThreads * kEach);
  CHECK(all_on_loop);
}

TEST_CASE("EventLoop.WaitForDropsACallAlreadyInTheWorkersRing" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});  // calls go to the worker's ring at once
  procpool::EventLoop loop;
  std::string path = "/tmp/procpool-test-withdrawn-" + std::to_string(getpid());
  std::remove(path.c_str());
  auto busy = pool.submit(tasks::sleep_ms, 200);
  auto queued = pool.submit(tasks::record_run, path, 7);  // behind it, in the ring
  auto after = pool.submit(tasks::add, 2, 2);             // after it, still runs
  CHECK_THROWS_AS(loop.run_until_complete(procpool::wait_for(queued, 30ms)), procpool::TaskTimeout);
  CHECK_THROWS_WITH_AS(queued.get(), "the call was cancelled before it started", procpool::TaskCancelled);
  CHECK(busy.get() == 200);
  CHECK(after.get() == 4);
  CHECK_FALSE(std::ifstream(path).good());  // skipped by the worker: never ran
  std::remove(path.c_str());
}

TEST_CASE("EventLoop.CancellingARunningCallLetsItFinishWithCancelRunningFalse" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1, .cancel_running = false});
  auto running = pool.submit(tasks::sleep_ms, 100);
  std::this_thread::sleep_for(20ms);  // the worker has started it
  CHECK_FALSE(running.cancel());
  CHECK(running.get() == 100);  // too late to withdraw: it ran to its end
}

// A task that blocks its loop's thread right after a pool call must not
// leave the pool deaf: the loop polls the pool's rings with the workers'
// doorbells off, and runs the task only after switching them back on.
TEST_CASE("EventLoop.ATaskThatBlocksDoesNotStallOtherThreadsCallsOnItsPool" * doctest::timeout(30)) {
  // The stall needs the task resumed from the loop's polling: likely, not certain, so a few rounds.
  for (int round = 0; round < 5; ++round) {
    procpool::ProcessPool pool({.workers = 2});
    procpool::EventLoop loop;
    std::atomic<bool> blocking{false};
    std::thread other([&] {
      while (!blocking.load()) std::this_thread::yield();
      for (int i = 0; i < 20; ++i) {
        auto f = pool.submit(tasks::sleep_ms, 2);
        CHECK(f.wait_for(std::chrono::milliseconds(500)));
      }
      blocking = false;
    });
    loop.run_until_complete([&]() -> procpool::Task<void> {
      // Calls short enough that the loop, polling, takes their answers itself
      // (and resumes the task from its polling).
      for (int i = 0; i < 200; ++i) co_await pool.submit(tasks::sleep_ms, 0);
      blocking = true;
      while (blocking.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));  // no awaiting meanwhile
    }());
    other.join();
  }
}
