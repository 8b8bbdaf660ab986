// SPDX-License-Identifier: MIT
// PoolOptions::max_pending: submit blocks at the bound, try_submit fails at
// once, submit_async and run_in_executor never block the loop's thread,
// shutdown wakes whoever waits, and every place comes back.
#include <doctest/doctest.h>

#include <boost/asio/post.hpp>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "support/census.hpp"
#include "support/task_functions.hpp"

using procpool::Future;
using procpool::Task;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

// Fills the pool to its bound with calls that sleep `ms`.
std::vector<Future<double>> fill(procpool::ProcessPool& pool, size_t bound, int ms) {
  std::vector<Future<double>> calls;
  for (size_t i = 0; i < bound; ++i) calls.push_back(pool.submit(tasks::sleep_ms, ms));
  return calls;
}

// True when the pool admits `bound` calls at once without blocking: every
// place has come back.
bool all_places_free(procpool::ProcessPool& pool, size_t bound) {
  std::vector<Future<int>> probes;
  for (size_t i = 0; i < bound; ++i) probes.push_back(pool.try_submit(tasks::identity, 1));
  bool free = true;
  for (auto& f : probes) {
    try {
      f.get();
    } catch (const procpool::PoolFull&) {
      free = false;
    }
  }
  return free;
}

// Coroutines take what they use as parameters: a capturing lambda's
// captures die with the closure, before a task created from it has run.
Task<void> tick(std::atomic<int>& ticks, std::atomic<bool>& stop) {
  while (!stop) {
    ++ticks;
    co_await procpool::sleep(5ms);
  }
}

Task<void> wait_for_room(procpool::EventLoop& loop, procpool::ProcessPool& pool, Future<int>& deferred,
                         Future<int>& awaited) {
  deferred = loop.run_in_executor(pool, tasks::add, 3, 4);  // waits for room, not yet submitted
  awaited = co_await pool.submit_async(tasks::add, 5, 6);   // suspends
}

Task<int> add_when_room(procpool::ProcessPool& pool) {
  Future<int> f = co_await pool.submit_async(tasks::add, 1, 2);  // suspends: the pool is full
  co_return co_await f;
}

int not_registered(int x) { return x; }  // no PROCPOOL_REGISTER: calls fail with UnknownFunction

// Both wait for room, then fail to submit (nothing by that name).
Task<void> submit_unknown_when_room(procpool::EventLoop& loop, procpool::ProcessPool& pool, Future<int>& by_name,
                                    Future<int>& by_pointer) {
  by_name = loop.run_in_executor<int>(pool, "no_such_function", 1);
  by_pointer = co_await pool.submit_async(not_registered, 2);
}

}  // namespace

TEST_CASE("Backpressure.SubmitBlocksAtTheBoundAndResumesWhenACallSettles" * doctest::timeout(60)) {
  census::Snapshot before;
  {
    procpool::ProcessPool pool({.workers = 2, .max_pending = 2});
    auto calls = fill(pool, 2, 300);
    std::atomic<bool> admitted{false};
    Future<int> third;
    auto t0 = Clock::now();
    std::thread submitter([&] {
      third = pool.submit(tasks::add, 1, 2);  // blocks: two calls are held
      admitted = true;
    });
    std::this_thread::sleep_for(150ms);
    CHECK_FALSE(admitted.load());
    submitter.join();
    CHECK(Clock::now() - t0 >= 250ms);  // until one of the 300 ms calls settled
    CHECK(third.get() == 3);
    for (auto& f : calls) CHECK(f.get() == 300);
    CHECK(all_places_free(pool, 2));  // a get() that returned has freed its place
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Backpressure.TrySubmitFailsAtOnceWithPoolFullNamingTheLimit" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1, .max_pending = 2});
  auto calls = fill(pool, 2, 300);
  auto t0 = Clock::now();
  auto refused = pool.try_submit(tasks::add, 1, 2);
  auto by_name = pool.try_call<int>("add", 1, 2);
  CHECK(Clock::now() - t0 < 50ms);
  REQUIRE(refused.ready());
  REQUIRE(by_name.ready());
  try {
    refused.get();
    FAIL("try_submit was admitted over the bound");
  } catch (const procpool::PoolFull& e) {
    CHECK(e.limit() == "max_pending");
    CHECK(e.maximum() == 2);
    CHECK(e.value() == 3);
    CHECK(std::string(e.what()) == "the pool is full: calls held with this call of 'add': 3 exceeds max_pending = 2");
  }
  CHECK_THROWS_AS(by_name.get(), procpool::ResourceLimitExceeded);  // PoolFull is one
  for (auto& f : calls) f.get();
  CHECK(pool.try_submit(tasks::add, 2, 3).get() == 5);  // room again
  CHECK(pool.try_call<int>("add", 3, 4).get() == 7);
}

TEST_CASE("Backpressure.WithoutABoundNothingBlocks" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1});
  auto calls = fill(pool, 50, 1);
  CHECK(pool.try_submit(tasks::add, 1, 2).get() == 3);
  for (auto& f : calls) CHECK(f.get() == 1);
}

TEST_CASE("Backpressure.SubmitAsyncSuspendsTheTaskNotTheLoop" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1, .max_pending = 1});
  procpool::EventLoop loop;
  std::atomic<int> ticks{0};
  std::atomic<bool> waiting_done{false};
  Clock::duration suspended{};
  int ticks_meanwhile = 0;
  auto result = loop.run_until_complete([&]() -> Task<std::vector<double>> {
    auto ticker = loop.create_task(tick(ticks, waiting_done));
    Future<double> first = co_await pool.submit_async(tasks::sleep_ms, 300);  // room: at once
    int ticks_before = ticks;
    auto t0 = Clock::now();
    Future<double> second = co_await pool.submit_async(tasks::sleep_ms, 10);  // suspends until `first` settles
    suspended = Clock::now() - t0;
    ticks_meanwhile = ticks - ticks_before;
    waiting_done = true;
    co_await ticker;
    double a = co_await first;  // (not both in one braced list: GCC 12 cannot)
    double b = co_await second;
    co_return std::vector<double>{a, b};
  }());
  CHECK(result == std::vector<double>{300, 10});
  // Until `first` settled: its place is given back just before it is
  // ready (so that whoever sees it ready finds the room), so `first` may
  // not be ready yet at the very moment this task resumes.
  CHECK(suspended >= 250ms);
  CHECK(ticks_meanwhile >= 10);  // the loop ran the ticker while the task waited for room
  CHECK(all_places_free(pool, 1));
}

TEST_CASE("Backpressure.RunInExecutorNeverBlocksTheLoopAndKeepsOrder" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1, .max_pending = 2});
  procpool::EventLoop loop;
  Clock::duration submitting{};
  double slow_result = 0;
  auto result = loop.run_until_complete([&]() -> Task<std::vector<int>> {
    auto t0 = Clock::now();
    std::vector<Future<int>> calls;
    calls.push_back(loop.run_in_executor(pool, tasks::identity, 0));
    calls.push_back(loop.run_in_executor(pool, tasks::identity, 1));
    co_await procpool::sleep(1ms);
    auto slow = loop.run_in_executor(pool, tasks::sleep_ms, 200);                                  // may wait for room
    for (int i = 2; i < 12; ++i) calls.push_back(loop.run_in_executor<int>(pool, "identity", i));  // wait for room
    submitting = Clock::now() - t0;
    slow_result = co_await slow;
    co_return co_await procpool::gather(std::move(calls));
  }());
  std::vector<int> expected;
  for (int i = 0; i < 12; ++i) expected.push_back(i);
  CHECK(result == expected);
  CHECK(submitting < 100ms);  // the loop's thread was never blocked
  CHECK(slow_result == 200);
  CHECK(all_places_free(pool, 2));
}

TEST_CASE("Backpressure.ShutdownWakesEverySubmitterThatWaits" * doctest::timeout(60)) {
  census::Snapshot before;
  {
    procpool::ProcessPool pool({.workers = 1, .max_pending = 1});
    auto held = pool.submit(tasks::sleep_ms, 500);
    Future<int> blocked;
    std::thread submitter([&] { blocked = pool.submit(tasks::add, 1, 2); });
    procpool::EventLoop loop;
    Future<int> deferred;
    Future<int> awaited;
    auto task = loop.create_task(wait_for_room(loop, pool, deferred, awaited));
    std::thread closer([&] {
      std::this_thread::sleep_for(100ms);
      pool.shutdown({.wait = false});
    });
    loop.run_until_complete([&]() -> Task<void> { co_await task; }());
    closer.join();
    submitter.join();
    CHECK_THROWS_AS(blocked.get(), procpool::PoolShutdown);
    CHECK_THROWS_AS(deferred.get(), procpool::PoolShutdown);
    CHECK_THROWS_AS(awaited.get(), procpool::PoolShutdown);
    CHECK(held.get() == 500);  // accepted before the shutdown: it finishes
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Backpressure.ASubmitFromThePoolsOwnThreadIsAdmittedOverTheBound" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1, .max_pending = 1});
  std::atomic<bool> chained{false};
  Future<int> inner;
  pool.submit(tasks::add, 1, 1).then([&](Future<int> first) {
    // The call that ran this callback has settled, but another is held:
    // the bound is reached, and this thread cannot wait for itself.
    auto other = pool.submit(tasks::sleep_ms, 200);
    inner = pool.submit(tasks::add, first.get(), 40);  // over the bound, not a deadlock
    chained = true;
    (void)other;
  });
  REQUIRE(census::eventually([&] { return chained.load(); }));
  CHECK(inner.get() == 42);
  // And from a handler on the pool's executor.
  auto held = pool.submit(tasks::sleep_ms, 200);
  std::atomic<bool> posted{false};
  Future<int> from_handler;
  boost::asio::post(pool.get_executor(), [&] {
    from_handler = pool.submit(tasks::identity, 7);
    posted = true;
  });
  REQUIRE(census::eventually([&] { return posted.load(); }));
  CHECK(from_handler.get() == 7);
  held.get();
  CHECK(census::eventually([&] { return all_places_free(pool, 1); }));
}

TEST_CASE("Backpressure.EachMapChunkIsOneCall" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 2, .max_pending = 2});
  std::vector<int> inputs(64);
  for (int i = 0; i < 64; ++i) inputs[static_cast<size_t>(i)] = i;
  auto t0 = Clock::now();
  auto mapped = pool.map(tasks::identity, inputs, 8);  // 8 chunks through 2 places, as room frees
  CHECK(mapped.get() == inputs);
  CHECK(Clock::now() - t0 < 10s);
  // A chunk held is a place held.
  auto held = fill(pool, 2, 300);
  CHECK_THROWS_AS(pool.try_submit(tasks::identity, 1).get(), procpool::PoolFull);
  for (auto& f : held) f.get();
  CHECK(all_places_free(pool, 2));
}

TEST_CASE("Backpressure.EveryOutcomeGivesItsPlaceBack" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 2, .max_pending = 4, .stop_grace = 0ms});
  // Value, exception, crash, deadline, cancel in the queue, cancel running.
  CHECK(pool.submit(tasks::add, 1, 2).get() == 3);
  CHECK_THROWS_AS(pool.submit(tasks::throw_kind, std::string("invalid_argument")).get(), std::invalid_argument);
  CHECK_THROWS_AS(pool.submit(tasks::crash, std::string("abort")).get(), procpool::WorkerCrashed);
  CHECK_THROWS_AS(pool.submit_with({.timeout = 50ms}, tasks::sleep_ms, 5000).get(), procpool::TaskTimeout);
  auto running = pool.submit(tasks::sleep_ms, 5000);
  auto running2 = pool.submit(tasks::sleep_ms, 5000);
  auto queued = pool.submit(tasks::sleep_ms, 5000);
  std::this_thread::sleep_for(100ms);
  CHECK(queued.cancel());
  CHECK(running.cancel());
  CHECK(running2.cancel());
  CHECK(census::eventually([&] { return all_places_free(pool, 4); }));
}

TEST_CASE("Backpressure.ACancelledTaskGivesItsPlaceBack" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1, .max_pending = 1});
  procpool::EventLoop loop;
  auto held = pool.submit(tasks::sleep_ms, 300);
  auto waiter = loop.create_task(add_when_room(pool));
  loop.call_later(50ms, [&] { waiter.cancel(); });
  CHECK_THROWS_AS(loop.run_until_complete([&]() -> Task<int> { co_return co_await waiter; }()),
                  procpool::TaskCancelled);
  CHECK(held.get() == 300);
  CHECK(census::eventually([&] { return all_places_free(pool, 1); }));
}

TEST_CASE("Backpressure.AGrantedCallThatFailsToSubmitGivesItsPlaceBack" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1, .max_pending = 1});
  procpool::EventLoop loop;
  auto held = pool.submit(tasks::sleep_ms, 200);
  Future<int> by_name, by_pointer;
  loop.run_until_complete(submit_unknown_when_room(loop, pool, by_name, by_pointer));
  CHECK(held.get() == 200);
  CHECK_THROWS_AS(by_name.get(), procpool::UnknownFunction);
  CHECK_THROWS_AS(by_pointer.get(), procpool::UnknownFunction);
  CHECK(census::eventually([&] { return all_places_free(pool, 1); }));
}

namespace {
std::vector<int> naps(size_t n, int ms) { return std::vector<int>(n, ms); }
}  // namespace

// As Python's Pool.imap, which never blocks its caller: at the bound the
// chunks that find no room wait for it, and the stream is read meanwhile.
// (imap used to submit chunk by chunk before it returned: nothing could be
// read until all but the last two chunks had run.)
TEST_CASE("Backpressure.MapAndImapAtTheBoundReturnAtOnceAndTheirChunksEnterAsRoomFrees" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 2, .max_pending = 2});
  auto stream = pool.imap(tasks::sleep_ms, naps(20, 100), 1);  // a temporary: the waiting chunks hold copies
  CHECK(pool.stats().submitted < 20);
  // (Each chunk sleeps 100 ms, 1 s for all: this thread would have to lose
  // most of it for the checks below to find every chunk submitted.)
  auto first = stream.next();
  CHECK(first.value() == 100);
  CHECK(pool.stats().submitted < 20);                                              // read while later chunks wait
  CHECK_THROWS_AS(pool.try_submit(tasks::identity, 1).get(), procpool::PoolFull);  // the bound holds
  size_t read = 1;
  while (!stream.done()) {
    CHECK(stream.next().value() == 100);
    ++read;
  }
  CHECK(read == 20);

  auto before = pool.stats().submitted;
  auto mapped = pool.map(tasks::sleep_ms, naps(20, 30), 1);
  CHECK(pool.stats().submitted - before < 20);
  auto unordered = pool.imap_unordered(tasks::sleep_ms, naps(6, 10), 2);  // behind the map's chunks, in turn
  CHECK(mapped.get() == std::vector<double>(20, 30));
  size_t seen = 0;
  for (auto [i, r] : unordered) {
    CHECK(r.value() == 10);
    ++seen;
  }
  CHECK(seen == 6);
  CHECK(census::eventually([&] { return all_places_free(pool, 2); }));
}

TEST_CASE("Backpressure.ChunksWaitingForRoomFailWithPoolShutdownWhenThePoolShutsDown" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 2, .max_pending = 2});
  auto stream = pool.imap(tasks::sleep_ms, naps(10, 200), 1);
  pool.shutdown({.wait = false});
  size_t ran = 0, refused = 0;
  while (!stream.done()) {
    auto r = stream.next();
    if (r.has_value()) {
      CHECK(r.value() == 200);
      ++ran;
      continue;
    }
    try {
      r.value();
    } catch (const procpool::PoolShutdown&) {
      ++refused;
    }
  }
  CHECK(ran >= 2);  // the chunks admitted before the shutdown finish
  CHECK(ran + refused == 10);
  CHECK(refused > 0);
}

namespace {
size_t half_saved_size(tasks::HalfSaved h) { return h.big.size(); }  // its argument never encodes
}  // namespace
PROCPOOL_REGISTER(half_saved_size);

// Each waiting chunk, granted a place, fails to encode and gives the place
// straight back, which grants the next: that used to recurse once per
// waiter (100,000 deep here, past any thread's stack).
TEST_CASE("Backpressure.AQueueOfChunksThatEachFailAtOnceIsHandedOnInALoop" * doctest::timeout(120)) {
  procpool::ProcessPool pool({.workers = 1, .max_pending = 1});
  auto held = pool.submit(tasks::sleep_ms, 200);
  std::vector<tasks::HalfSaved> inputs(100'000, tasks::HalfSaved{"x"});
  auto each = pool.map(procpool::return_exceptions, half_saved_size, inputs, 1);
  CHECK(held.get() == 200);
  auto results = each.get();
  REQUIRE(results.size() == inputs.size());
  size_t refused = 0;
  for (auto& r : results) {
    try {
      r.value();
    } catch (const procpool::SerializationError&) {
      ++refused;
    }
  }
  CHECK(refused == inputs.size());
  CHECK(census::eventually([&] { return all_places_free(pool, 1); }));
}
