// SPDX-License-Identifier: MIT
// ProcessPool::async_call as a real Asio asynchronous operation.
#include <utility>  // Boost 1.74's awaitable.hpp uses std::exchange without it

#include <doctest/doctest.h>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <future>

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
