// SPDX-License-Identifier: MIT
// ProcessPool::async_call as a real Asio asynchronous operation.
#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without it

#include <doctest/doctest.h>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <unistd.h>

#include <array>
#include <future>
#include <memory>
#include <optional>

#include "support/census.hpp"
#include "support/task_functions.hpp"

namespace asio = boost::asio;

TEST_CASE("AsioInterop.CallbackRunsOnItsAssociatedExecutor" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  asio::io_context io;
  int value = 0;
  std::thread::id ran_on;
  pool.async_call(tasks::add, 20, 22, asio::bind_executor(io, [&](std::exception_ptr e, int v) {
                    CHECK_FALSE(e);
                    value = v;
                    ran_on = std::this_thread::get_id();
                  }));
  io.run();  // returns only after the handler ran: the call held a work guard
  CHECK(value == 42);
  CHECK(ran_on == std::this_thread::get_id());
}

TEST_CASE("AsioInterop.ErrorsArriveAsExceptionPtr" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  asio::io_context io;
  std::exception_ptr error;
  pool.async_call(tasks::throw_kind, std::string("out_of_range"),
                  asio::bind_executor(io, [&](std::exception_ptr e, int) { error = e; }));
  io.run();
  REQUIRE(error);
  CHECK_THROWS_AS(std::rethrow_exception(error), std::out_of_range);
}

TEST_CASE("AsioInterop.PlainCallbackRunsOnThePoolExecutorNotInline" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  std::promise<std::thread::id> ran_on;
  bool returned = false;
  pool.async_call(tasks::noop, [&](std::exception_ptr) { ran_on.set_value(std::this_thread::get_id()); });
  returned = true;
  auto id = ran_on.get_future().get();
  CHECK(returned);
  CHECK(id != std::this_thread::get_id());
}

TEST_CASE("AsioInterop.UseFutureGivesAStdFuture" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  std::future<std::string> f = pool.async_call(tasks::echo, std::string("via use_future"), asio::use_future);
  CHECK(f.get() == "via use_future");
  std::future<int> failing = pool.async_call(tasks::crash, std::string("segv"), asio::use_future);
  CHECK_THROWS_AS(failing.get(), procpool::WorkerCrashed);
}

TEST_CASE("AsioInterop.UseAwaitableInAUsersCoroutine" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 2});
  asio::io_context io;
  int sum = 0;
  bool caught = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        sum = co_await pool.async_call(tasks::add, 1, 2, asio::use_awaitable);
        sum += co_await pool.async_call(tasks::add, 3, 4, asio::use_awaitable);
        try {
          co_await pool.async_call(tasks::throw_kind, std::string("invalid_argument"), asio::use_awaitable);
        } catch (const std::invalid_argument&) {
          caught = true;
        }
      },
      asio::detached);
  io.run();
  CHECK(sum == 10);
  CHECK(caught);
}

namespace {
// An io_context run by a thread of the test, as a user's application would.
struct UserContext {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::thread thread{[this] { io.run(); }};
  ~UserContext() {
    work.reset();
    io.stop();
    thread.join();
  }
};
}  // namespace

TEST_CASE("AsioInterop.PoolRunsItsReactorOnAUsersIoContext" * doctest::timeout(60)) {
  census::Snapshot before;
  {
    UserContext user;
    procpool::ProcessPool pool({.workers = 2, .io_context = &user.io});
    CHECK(pool.submit(tasks::add, 1, 2).get() == 3);
    std::promise<std::thread::id> callback_thread;
    pool.submit(tasks::sleep_ms, 20).then([&](procpool::Future<double>) {
      callback_thread.set_value(std::this_thread::get_id());
    });
    CHECK(callback_thread.get_future().get() == user.thread.get_id());
    // Crashes are noticed and workers replaced by the user's thread.
    CHECK_THROWS_AS(pool.submit(tasks::crash, std::string("segv")).get(), procpool::WorkerCrashed);
    std::vector<procpool::Future<int>> fs;
    for (int i = 0; i < 1000; ++i) fs.push_back(pool.submit(tasks::identity, i));
    long long wrong = 0;
    for (int i = 0; i < 1000; ++i) wrong += fs[static_cast<size_t>(i)].get() != i;
    CHECK(wrong == 0);
    CHECK(census::eventually([&] { return pool.worker_pids().size() == 2; }));
    // async_call's default executor is that io_context too.
    std::future<int> f = pool.async_call(tasks::add, 20, 22, asio::use_future);
    CHECK(f.get() == 42);
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("AsioInterop.PoolOnAUsersIoContextShutsDownWithCallsPending" * doctest::timeout(60)) {
  census::Snapshot before;
  {
    UserContext user;
    procpool::Future<double> pending;
    {
      // A destructor that does not wait (as terminate()).
      procpool::ProcessPool pool(
          {.workers = 1, .destructor_wait = std::chrono::milliseconds(0), .io_context = &user.io});
      pending = pool.submit(tasks::sleep_ms, 5000);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the worker has it
    }
    CHECK_THROWS_AS(pending.get(), procpool::PoolShutdown);
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("AsioInterop.PoolOnAUsersIoContextCanBeDestroyedInItsCallback" * doctest::timeout(60)) {
  census::Snapshot before;
  {
    UserContext user;
    auto pool = std::make_unique<procpool::ProcessPool>(procpool::PoolOptions{.workers = 1, .io_context = &user.io});
    std::promise<void> destroyed;
    pool->submit(tasks::add, 1, 1).then([&](procpool::Future<int>) {
      pool.reset();
      destroyed.set_value();
    });
    destroyed.get_future().get();
  }
  CHECK(census::eventually([&] { return census::leaks_since(before).empty(); }));
}

TEST_CASE("AsioInterop.AWakeTheReactorQueuedForAClosedDescriptorIsNotTakenForAWorkersDeath" * doctest::timeout(60)) {
  // Boost.Asio 1.74's epoll reactor: a handler that closes descriptors whose
  // readiness is already queued frees their state at once, and the next
  // descriptors registered take it, queued readiness and all. On a user's
  // io_context the pool forks its first worker on the constructing thread,
  // so a pool made in such a handler registers its worker's doorbell and
  // pidfd on the freed states, and the wait on the pidfd completes with the
  // worker alive. The pool must not take that for the worker's death (it
  // killed a live worker, and failed its call, before it checked).
  census::Snapshot before;
  {
    asio::io_context io;
    std::array<std::array<int, 2>, 3> pipes{};
    std::array<std::unique_ptr<asio::posix::stream_descriptor>, 3> ours;
    for (size_t i = 0; i < 3; ++i) {
      REQUIRE(::pipe(pipes[i].data()) == 0);
      REQUIRE(::write(pipes[i][1], "x", 1) == 1);  // readable in the reactor's first batch
      ours[i] = std::make_unique<asio::posix::stream_descriptor>(io, pipes[i][0]);
    }
    std::optional<procpool::ProcessPool> pool;
    size_t woke = 0;
    for (size_t i = 0; i < 3; ++i)
      ours[i]->async_wait(asio::posix::stream_descriptor::wait_read, [&, i](const boost::system::error_code& ec) {
        if (ec || pool) return;
        ++woke;
        for (size_t j = 0; j < 3; ++j)
          if (j != i) ours[j].reset();  // their readiness is queued: their state is freed with it
        pool.emplace(procpool::PoolOptions{.workers = 1, .io_context = &io});
      });
    io.run_for(std::chrono::milliseconds(300));
    REQUIRE(pool);
    CHECK(woke == 1);
    std::vector<pid_t> first = pool->worker_pids();
    REQUIRE(first.size() == 1);
    CHECK(pool->stats().worker_deaths == 0);
    // The worker is the first one still, and serves.
    std::thread runner;
    auto work = asio::make_work_guard(io);
    io.restart();
    runner = std::thread([&] { io.run(); });
    CHECK(pool->submit(tasks::add, 2, 3).get() == 5);
    CHECK(pool->worker_pids() == first);
    CHECK(pool->stats().worker_deaths == 0);
    pool.reset();
    work.reset();
    io.stop();
    runner.join();
    ours[0].reset();
    ours[1].reset();
    ours[2].reset();
    for (auto& p : pipes) ::close(p[1]);
  }
  CHECK(census::leaks_since(before) == "");
}
