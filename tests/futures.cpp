// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <atomic>
#include <coroutine>

#include "support/census.hpp"
#include "support/task_functions.hpp"

namespace {

// The smallest coroutine type that can co_await a Future: runs eagerly and
// records what it got.
struct Detached {
  struct promise_type {
    Detached get_return_object() { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() {}
    void unhandled_exception() { std::terminate(); }
  };
};

Detached add_then_echo(procpool::ProcessPool& pool, std::atomic<int>& out, std::atomic<bool>& threw) {
  int sum = co_await pool.submit(tasks::add, 20, 22);
  std::string text = co_await pool.submit(tasks::echo, std::to_string(sum));
  out = std::stoi(text);
  try {
    co_await pool.submit(tasks::throw_kind, std::string("invalid_argument"));
  } catch (const std::invalid_argument&) {
    threw = true;
  }
}

}  // namespace

TEST_CASE("Futures.ThenRunsOnceWithTheResult" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  std::atomic<int> calls{0}, value{0};
  auto f = pool.submit(tasks::sleep_ms, 50);
  f.then([&](procpool::Future<double> done) {
    value = static_cast<int>(done.get());
    ++calls;
  });
  CHECK(census::eventually([&] { return calls.load() == 1; }));
  CHECK(value == 50);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(calls == 1);
}

TEST_CASE("Futures.ThenOnAReadyFutureRunsAtOnce" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  auto f = pool.submit(tasks::add, 1, 2);
  f.wait();
  bool ran = false;
  f.then([&](procpool::Future<int> done) { ran = done.get() == 3; });
  CHECK(ran);
}

TEST_CASE("Futures.ThenSeesTheError" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  std::atomic<bool> saw{false};
  pool.submit(tasks::throw_kind, std::string("runtime_error")).then([&](procpool::Future<int> done) {
    try {
      done.get();
    } catch (const std::runtime_error& e) {
      saw = std::string(e.what()) == "runtime";
    }
  });
  CHECK(census::eventually([&] { return saw.load(); }));
}

TEST_CASE("Futures.WaitForTimesOutThenSucceeds" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  auto f = pool.submit(tasks::sleep_ms, 300);
  CHECK_FALSE(f.wait_for(std::chrono::milliseconds(20)));
  CHECK_FALSE(f.ready());
  CHECK(f.wait_for(std::chrono::seconds(10)));
  CHECK(f.ready());
  CHECK(f.get() == 300);
}

TEST_CASE("Futures.GetTwiceThrows" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  auto f = pool.submit(tasks::add, 1, 1);
  CHECK(f.get() == 2);
  CHECK_THROWS_AS(f.get(), procpool::Error);
}

TEST_CASE("Futures.CoAwaitReturnsValuesAndRethrows" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 2});
  std::atomic<int> out{0};
  std::atomic<bool> threw{false};
  add_then_echo(pool, out, threw);
  CHECK(census::eventually([&] { return threw.load(); }));
  CHECK(out == 42);
}

TEST_CASE("Futures.NoSharedStateOutlivesItsFutures" * doctest::timeout(30)) {
  long before = procpool::detail::StateBase::live_count();
  {
    procpool::ProcessPool pool({.workers = 2});
    std::vector<procpool::Future<int>> fs;
    for (int i = 0; i < 1000; ++i) fs.push_back(pool.submit(tasks::identity, i));
    fs.push_back(pool.submit(tasks::crash, std::string("segv")));
    for (auto& f : fs) f.wait();
  }
  CHECK(procpool::detail::StateBase::live_count() == before);
}

TEST_CASE("Futures.DefaultConstructedFutureThrowsInsteadOfCrashing" * doctest::timeout(30)) {
  procpool::Future<int> f;
  CHECK_FALSE(f.valid());
  CHECK_THROWS_WITH_AS(f.ready(), doctest::Contains("no state"), procpool::Error);
  CHECK_THROWS_AS(f.get(), procpool::Error);
}

TEST_CASE("Futures.CallbacksRunOnThePoolThreadEvenWhenAWaiterSettles" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  std::atomic<bool> done{false};
  std::thread::id ran_on;
  auto f = pool.submit(tasks::add, 1, 2);
  f.then([&](procpool::Future<int>) {
    ran_on = std::this_thread::get_id();
    done = true;
  });
  f.wait();  // this thread polls the rings and may be the one that settles it
  CHECK(census::eventually([&] { return done.load(); }));
  CHECK(ran_on != std::this_thread::get_id());
}

TEST_CASE("Futures.BlockingGetInACallbackIsRefusedNotDeadlocked" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  std::atomic<bool> refused{false};
  pool.submit(tasks::add, 1, 2).then([&](procpool::Future<int>) {
    try {
      pool.submit(tasks::sleep_ms, 100).get();
    } catch (const procpool::Error& e) {
      refused = std::string(e.what()).find("would deadlock") != std::string::npos;
    }
  });
  CHECK(census::eventually([&] { return refused.load(); }));
  CHECK(pool.submit(tasks::add, 2, 2).get() == 4);
}
