// SPDX-License-Identifier: MIT
// The parts of ProcessPool's interface MpiPool has too: max_pending with
// try_submit, submit_async, a run_in_executor that never blocks the loop
// and a map that never blocks; async_call as an Asio operation; stats().
#include <doctest/doctest.h>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <procpool/mpi/mpi.hpp>

#include "support/task_functions.hpp"

using procpool::Future;
using procpool::Task;
using procpool::mpi::MpiPool;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST_CASE("MpiPoolApi.AtMaxPendingTrySubmitFailsWithPoolFullAndSubmitWaitsForRoom" * doctest::timeout(60)) {
  MpiPool pool({.max_pending = 2});
  auto a = pool.submit(tasks::sleep_ms, 300);
  auto b = pool.submit(tasks::sleep_ms, 300);
  auto refused = pool.try_submit(tasks::add, 1, 2);
  REQUIRE(refused.ready());
  CHECK_THROWS_WITH_AS(refused.get(), doctest::Contains("max_pending"), procpool::PoolFull);
  CHECK_THROWS_AS(pool.try_call<int>("add", 1, 2).get(), procpool::PoolFull);
  auto t0 = Clock::now();
  // Blocks until a or b settles (its place is given back just before it
  // is ready, as ProcessPool's: so not a.ready() here).
  auto waited = pool.submit(tasks::add, 1, 2);
  CHECK(Clock::now() - t0 >= 200ms);
  CHECK(waited.get() == 3);
  a.get();
  b.get();
  CHECK(pool.try_submit(tasks::add, 2, 2).get() == 4);  // room again
}

TEST_CASE("MpiPoolApi.ShutdownRefusesASubmitWaitingForRoom" * doctest::timeout(60)) {
  MpiPool pool({.max_pending = 1});
  auto held = pool.submit(tasks::sleep_ms, 500);
  std::promise<bool> refused;
  std::thread blocked([&] {
    try {
      pool.submit(tasks::add, 1, 2).get();
      refused.set_value(false);
    } catch (const procpool::PoolShutdown&) {
      refused.set_value(true);
    }
  });
  std::this_thread::sleep_for(100ms);  // it waits for room by now
  pool.shutdown(false);
  CHECK(refused.get_future().get());
  blocked.join();
  CHECK(held.get() == 500);  // a call already taken still finishes
}

TEST_CASE("MpiPoolApi.SubmitAsyncAndRunInExecutorWaitForRoomWithoutBlockingTheLoop" * doctest::timeout(60)) {
  MpiPool pool({.max_pending = 1});
  procpool::EventLoop loop;
  Clock::duration suspended{};
  Clock::duration submitting{};
  auto result = loop.run_until_complete([&]() -> Task<std::vector<int>> {
    Future<double> first = co_await pool.submit_async(tasks::sleep_ms, 300);  // room: at once
    auto t0 = Clock::now();
    // Over the bound: these wait on the host; the loop's thread goes on.
    std::vector<Future<int>> calls;
    for (int i = 0; i < 5; ++i) calls.push_back(loop.run_in_executor(pool, tasks::identity, i));
    calls.push_back(loop.run_in_executor<int>(pool, "identity", 5));
    submitting = Clock::now() - t0;
    Future<int> last = co_await pool.submit_async(tasks::add, 3, 4);  // suspends until the others settle
    suspended = Clock::now() - t0;
    co_await first;
    std::vector<int> out = co_await procpool::gather(std::move(calls));
    out.push_back(co_await last);
    co_return out;
  }());
  CHECK(result == std::vector<int>{0, 1, 2, 3, 4, 5, 7});
  CHECK(submitting < 100ms);  // run_in_executor never blocked
  CHECK(suspended >= 250ms);  // submit_async waited for `first`
}

// As ProcessPool's: the chunks that find no room wait for it, and imap's
// stream is read meanwhile.
TEST_CASE("MpiPoolApi.MapAndImapAtMaxPendingReturnAtOnceAndTheirChunksEnterAsRoomFrees" * doctest::timeout(60)) {
  MpiPool pool({.max_pending = 2});
  auto stream = pool.imap(tasks::sleep_ms, std::vector<int>(12, 100), 1);  // a temporary: waiting chunks hold copies
  CHECK(pool.stats().submitted < 12);
  CHECK(stream.next().value() == 100);
  CHECK(pool.stats().submitted < 12);
  CHECK_THROWS_AS(pool.try_submit(tasks::identity, 1).get(), procpool::PoolFull);
  size_t read = 1;
  for (; !stream.done(); ++read) CHECK(stream.next().value() == 100);
  CHECK(read == 12);
  auto mapped = pool.map(tasks::identity, std::vector<int>{1, 2, 3, 4, 5, 6}, 1);
  CHECK(mapped.get() == std::vector<int>{1, 2, 3, 4, 5, 6});
  CHECK(pool.try_submit(tasks::add, 2, 2).get() == 4);  // room again
}

TEST_CASE("MpiPoolApi.AsyncCallCompletesThroughAsio" * doctest::timeout(60)) {
  MpiPool pool;
  std::future<int> sum = pool.async_call(tasks::add, 20, 22, boost::asio::use_future);
  CHECK(sum.get() == 42);
  std::future<int> failing = pool.async_call(tasks::throw_kind, std::string("out_of_range"), boost::asio::use_future);
  CHECK_THROWS_AS(failing.get(), std::out_of_range);
  // A handler bound to an io_context runs there, after async_call returned.
  boost::asio::io_context io;
  std::thread::id ran_on;
  int value = 0;
  bool returned = false;
  pool.async_call_with({.timeout = 10s}, tasks::add, 1, 2,
                       boost::asio::bind_executor(io, [&](std::exception_ptr e, int v) {
                         CHECK(!e);
                         CHECK(returned);
                         value = v;
                         ran_on = std::this_thread::get_id();
                       }));
  returned = true;
  io.run();  // the work guard keeps it running until the handler ran
  CHECK(value == 3);
  CHECK(ran_on == std::this_thread::get_id());
}

TEST_CASE("MpiPoolApi.StatsCountEachCallOnceByItsOutcome" * doctest::timeout(60)) {
  MpiPool pool;
  CHECK(pool.stats().submitted == 0);
  for (int i = 0; i < 3; ++i) pool.submit(tasks::add, i, i).get();
  CHECK_THROWS_AS(pool.submit(tasks::throw_kind, std::string("runtime_error")).get(), std::runtime_error);
  CHECK_THROWS_AS(pool.submit(tasks::crash, std::string("abort")).get(), procpool::WorkerCrashed);
  CHECK_THROWS_AS(pool.submit_with({.timeout = 50ms}, tasks::sleep_ms, 2000).get(), procpool::TaskTimeout);
  auto cancelled = pool.submit(tasks::sleep_ms, 2000);
  std::this_thread::sleep_for(100ms);
  CHECK(cancelled.cancel());
  CHECK(pool.map(tasks::identity, std::vector<int>(10, 1), 5).get().size() == 10);       // two chunks
  CHECK_THROWS_AS(pool.call<int>("no_such_function").get(), procpool::UnknownFunction);  // refused: not counted
  procpool::PoolStats s = pool.stats();
  CHECK(s.submitted == 9);
  CHECK(s.succeeded == 5);
  CHECK(s.raised == 1);
  CHECK(s.crashed == 1);
  CHECK(s.timed_out == 1);
  CHECK(s.cancelled == 1);
  CHECK(s.settled() == s.submitted);
  CHECK(s.queued == 0);
  CHECK(s.workers.empty());
}
