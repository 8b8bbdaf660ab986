// SPDX-License-Identifier: MIT
// concurrent.futures' blocking wait and as_completed
// (procpool::futures::wait, procpool::futures::as_completed).
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

#include "support/census.hpp"
#include "support/task_functions.hpp"

using namespace std::chrono_literals;

namespace {
using Clock = std::chrono::steady_clock;

std::vector<double> values_of(std::vector<procpool::Future<double>>& fs) {
  std::vector<double> out;
  for (auto& f : fs) out.push_back(f.get());
  return out;
}
}  // namespace

TEST_CASE("FuturesWait.AllCompletedReturnsOnceEveryFutureIsDone" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 2});
  std::vector<procpool::Future<double>> fs{pool.submit(tasks::sleep_ms, 30), pool.submit(tasks::sleep_ms, 10),
                                           pool.submit(tasks::sleep_ms, 20)};
  auto [done, pending] = procpool::futures::wait(std::move(fs));
  CHECK(pending.empty());
  CHECK(values_of(done) == std::vector<double>{30, 10, 20});  // in the order given
}

TEST_CASE("FuturesWait.FirstCompletedReturnsWithTheOthersPending" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 2});
  auto started = Clock::now();
  std::vector<procpool::Future<double>> fs{pool.submit(tasks::sleep_ms, 5000), pool.submit(tasks::sleep_ms, 20)};
  auto result = procpool::futures::wait(std::move(fs), procpool::FIRST_COMPLETED);
  CHECK(Clock::now() - started < 3s);
  REQUIRE(result.done.size() == 1);
  REQUIRE(result.pending.size() == 1);
  CHECK(result.done[0].get() == 20);
  CHECK(result.pending[0].cancel());
}

// As in concurrent.futures: a cancelled future is done, not an exception.
TEST_CASE("FuturesWait.FirstExceptionReturnsAtARaiseNotAtACancel" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  auto running = pool.submit(tasks::sleep_ms, 100);
  auto cancelled = pool.submit(tasks::sleep_ms, 5000);
  REQUIRE(cancelled.cancel());
  auto started = Clock::now();
  auto all = procpool::futures::wait(std::vector{cancelled, running}, procpool::FIRST_EXCEPTION);
  CHECK(all.done.size() == 2);  // the cancel did not end it: the sleep did
  CHECK(Clock::now() - started >= 50ms);

  std::vector<procpool::Future<int>> fs{pool.submit(tasks::throw_kind, std::string("runtime_error")),
                                        pool.submit(tasks::identity, 4)};
  auto slow = pool.submit(tasks::sleep_ms, 5000);
  auto raised = procpool::futures::wait(std::move(fs), procpool::FIRST_EXCEPTION);
  REQUIRE_FALSE(raised.done.empty());
  CHECK_THROWS_AS(raised.done[0].get(), std::runtime_error);
  CHECK(slow.cancel());
}

TEST_CASE("FuturesWait.ATimeoutReturnsWhatIsDoneWithoutThrowing" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 2});
  std::vector<procpool::Future<double>> fs{pool.submit(tasks::sleep_ms, 10), pool.submit(tasks::sleep_ms, 5000)};
  auto started = Clock::now();
  auto result = procpool::futures::wait(std::move(fs), procpool::ALL_COMPLETED, 200ms);
  auto took = Clock::now() - started;
  CHECK(took >= 200ms);
  CHECK(took < 3s);
  CHECK(result.done.size() == 1);
  REQUIRE(result.pending.size() == 1);
  CHECK(result.pending[0].cancel());
  // Any length: hours::max() is no limit, not an overflow into the past.
  auto unlimited = procpool::futures::wait(std::vector{pool.submit(tasks::sleep_ms, 30)}, procpool::ALL_COMPLETED,
                                           std::chrono::hours::max());
  CHECK(unlimited.done.size() == 1);
}

TEST_CASE("FuturesWait.NoFuturesReturnAtOnceAndAFutureWithNoCallIsAnError" * doctest::timeout(30)) {
  auto result = procpool::futures::wait(std::vector<procpool::Future<int>>{}, procpool::FIRST_COMPLETED);
  CHECK(result.done.empty());
  CHECK(result.pending.empty());
  procpool::futures::as_completed<int> none({});
  CHECK(none.empty());
  CHECK(none.begin() == none.end());
  CHECK_THROWS_AS(none.next(), procpool::Error);
  // A Future with no call is an error to wait on, as to get().
  CHECK_THROWS_AS(procpool::futures::wait(std::vector<procpool::Future<int>>(2)), procpool::Error);
  CHECK_THROWS_AS(procpool::futures::as_completed(std::vector<procpool::Future<int>>(1)), procpool::Error);
}

TEST_CASE("FuturesWait.AsCompletedYieldsTheFuturesInTheOrderTheyFinish" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 3});
  std::vector<procpool::Future<double>> fs{pool.submit(tasks::sleep_ms, 300), pool.submit(tasks::sleep_ms, 10),
                                           pool.submit(tasks::sleep_ms, 150)};
  fs.push_back(fs[1]);  // given twice: yielded once
  std::vector<double> order;
  for (procpool::Future<double> f : procpool::futures::as_completed(std::move(fs))) order.push_back(f.get());
  CHECK(order == std::vector<double>{10, 150, 300});
}

TEST_CASE("FuturesWait.AsCompletedThrowsTaskTimeoutOnceItsTimeoutHasPassed" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 2});
  std::vector<procpool::Future<double>> fs{pool.submit(tasks::sleep_ms, 5000), pool.submit(tasks::sleep_ms, 10)};
  auto slow = fs[0];
  procpool::futures::as_completed completed(std::move(fs), 200ms);
  CHECK(completed.next().get() == 10);  // done in time
  auto started = Clock::now();
  CHECK_THROWS_AS(completed.next(), procpool::TaskTimeout);
  CHECK(Clock::now() - started < 3s);
  CHECK(completed.size() == 1);  // not yielded; still pending
  CHECK_FALSE(slow.ready());
  CHECK(slow.cancel());
}

TEST_CASE("FuturesWait.BlockingOnThePoolsOwnThreadIsRefusedNotDeadlocked" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  std::atomic<int> refused{0};
  pool.submit(tasks::add, 1, 2).then([&](procpool::Future<int>) {
    auto later = pool.submit(tasks::sleep_ms, 100);
    try {
      procpool::futures::wait(std::vector{later});
    } catch (const procpool::Error& e) {
      refused += std::string(e.what()).find("would deadlock") != std::string::npos;
    }
    try {
      procpool::futures::as_completed<double>(std::vector{later}).next();
    } catch (const procpool::Error& e) {
      refused += std::string(e.what()).find("would deadlock") != std::string::npos;
    }
    // A wait that cannot block is a look, there as anywhere.
    refused += procpool::futures::wait(std::vector{later}, procpool::ALL_COMPLETED, 0ms).pending.size() == 1;
  });
  CHECK(census::eventually([&] { return refused.load() == 3; }));
  CHECK(pool.submit(tasks::add, 2, 2).get() == 4);
}

// The waiting thread drains every pool the futures came from while it
// polls (one pool polls nothing: host_spin 0), and no answer is lost or
// given twice whether it drained it or the pool's own thread did.
TEST_CASE("FuturesWait.FuturesOfSeveralPoolsAreWaitedOnTogether" * doctest::timeout(60)) {
  procpool::ProcessPool polled({.workers = 1});
  procpool::ProcessPool unpolled({.workers = 1, .host_spin = 0us});
  long states_before = procpool::detail::StateBase::live_count();
  for (int round = 0; round < 3; ++round) {
    std::vector<procpool::Future<int>> fs;
    long want = 0;
    for (int i = 0; i < 400; ++i) {
      fs.push_back((i % 2 ? unpolled : polled).submit(tasks::identity, i));
      want += i;
    }
    long got = 0;
    size_t yielded = 0;
    for (procpool::Future<int> f : procpool::futures::as_completed(std::move(fs))) {
      got += f.get();
      ++yielded;
    }
    CHECK(yielded == 400);
    CHECK(got == want);
  }
  for (auto* quick : {&polled, &unpolled}) {
    auto* slow = quick == &polled ? &unpolled : &polled;
    auto started = Clock::now();
    std::vector<procpool::Future<double>> fs{slow->submit(tasks::sleep_ms, 5000), quick->submit(tasks::sleep_ms, 1)};
    auto result = procpool::futures::wait(std::move(fs), procpool::FIRST_COMPLETED);
    CHECK(Clock::now() - started < 3s);
    REQUIRE(result.done.size() == 1);
    CHECK(result.done[0].get() == 1);
    CHECK(result.pending.at(0).cancel());
  }
  CHECK(census::eventually([&] { return procpool::detail::StateBase::live_count() == states_before; }));
}
