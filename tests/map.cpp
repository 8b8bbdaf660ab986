// SPDX-License-Identifier: MIT
// ProcessPool::map: many calls of one function, in chunks of one frame each.
#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <chrono>

#include "support/census.hpp"
#include "support/task_functions.hpp"

namespace {

long square(int x) { return static_cast<long>(x) * x; }
PROCPOOL_REGISTER(square);

// Throws for every multiple of 1000 above 0, naming it.
int reject_thousands(int x) {
  if (x > 0 && x % 1000 == 0) throw std::invalid_argument("rejected " + std::to_string(x));
  return x;
}
PROCPOOL_REGISTER(reject_thousands);

void append_line(std::string path) { std::ofstream(path, std::ios::app) << "ran\n"; }
PROCPOOL_REGISTER(append_line);

long not_registered(int x) { return x; }

// Dies on "segv", as tasks::crash does; echoes anything else.
std::string echo_or_crash(std::string s) {
  if (s == "segv") tasks::crash(s);
  return s;
}
PROCPOOL_REGISTER(echo_or_crash);

std::vector<int> range(int n) {
  std::vector<int> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

}  // namespace

TEST_CASE("Map.ReturnsEveryResultInInputOrder" * doctest::timeout(60)) {
  census::Snapshot before;
  {
    procpool::ProcessPool pool({.workers = 2});
    std::vector<int> in = range(10007);
    for (size_t chunk : {size_t{0}, size_t{1}, size_t{7}, size_t{100000}}) {
      CAPTURE(chunk);
      std::vector<long> out = pool.map(square, in, chunk).get();
      REQUIRE(out.size() == in.size());
      bool all = true;
      for (size_t i = 0; i < in.size(); ++i) all &= out[i] == square(in[i]);
      CHECK(all);
    }
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Map.OfNothingGivesAnEmptyResult") {
  procpool::ProcessPool pool({.workers = 1});
  CHECK(pool.map(square, std::vector<int>{}).get().empty());
}

TEST_CASE("Map.ConvertsInputsToTheParameterType") {
  procpool::ProcessPool pool({.workers = 1});
  std::vector<short> in{1, 2, 3};
  CHECK(pool.map(square, in).get() == std::vector<long>{1, 4, 9});
}

TEST_CASE("Map.OfAVoidFunctionRunsEveryCallOnce") {
  std::string path = "/tmp/procpool-test-map-" + std::to_string(getpid());
  std::remove(path.c_str());
  {
    procpool::ProcessPool pool({.workers = 2});
    std::vector<std::string> in(300, path);
    pool.map(append_line, in, 16).get();
  }
  std::ifstream lines(path);
  int count = 0;
  for (std::string line; std::getline(lines, line);) ++count;
  CHECK(count == 300);
  std::remove(path.c_str());
}

TEST_CASE("Map.FailsWithTheExceptionOfTheEarliestFailingChunk") {
  procpool::ProcessPool pool({.workers = 2});
  std::vector<int> in = range(5000);
  // Chunks of 100: calls 1000, 2000, 3000 and 4000 throw, in chunks 10, 20, 30, 40.
  auto map = pool.map(reject_thousands, in, 100);
  CHECK_THROWS_WITH_AS(map.get(), "rejected 1000", std::invalid_argument);
  CHECK(pool.submit(square, 3).get() == 9);  // the pool is unharmed
}

TEST_CASE("Map.CrashFailsTheMapAndThePoolGoesOn") {
  procpool::ProcessPool pool({.workers = 2});
  std::vector<std::string> in{"segv"};
  auto map = pool.map(tasks::crash, in);
  CHECK_THROWS_AS(map.get(), procpool::WorkerCrashed);
  std::vector<long> out = pool.map(square, range(100), 10).get();
  CHECK(out.at(99) == 99L * 99);
}

TEST_CASE("Map.OfAnUnregisteredFunctionFailsWithUnknownFunction") {
  procpool::ProcessPool pool({.workers = 1});
  CHECK_THROWS_AS(pool.map(not_registered, range(3)).get(), procpool::UnknownFunction);
}

TEST_CASE("Map.ChunkOverTheMessageLimitFailsWithResourceLimitExceeded") {
  procpool::ProcessPool pool({.workers = 1, .max_message_bytes = 4096});
  std::vector<std::string> in(64, std::string(100, 'x'));  // one chunk of ~7 KB
  CHECK_THROWS_AS(pool.map(tasks::echo, in, 64).get(), procpool::ResourceLimitExceeded);
  CHECK(pool.map(tasks::echo, in, 8).get().size() == 64);  // chunks of ~900 B fit
}

TEST_CASE("Map.WaitsFromAnEventLoopTask") {
  procpool::ProcessPool pool({.workers = 2});
  procpool::EventLoop loop;
  auto total = loop.run_until_complete([&]() -> procpool::Task<long> {
    std::vector<long> out = co_await pool.map(square, range(1000));
    co_return std::accumulate(out.begin(), out.end(), 0L);
  }());
  CHECK(total == 332833500L);
}

TEST_CASE("Map.HugeChunkSizeStillRunsEveryCall") {
  procpool::ProcessPool pool({.workers = 1});
  std::vector<long> out = pool.map(square, range(10), SIZE_MAX).get();
  CHECK(out.size() == 10);
  CHECK(out.at(9) == 81);
}

TEST_CASE("Map.NegativeChunkSizeThrowsInvalidArgumentNamingIt" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  int chunksize = -1;
  CHECK_THROWS_WITH_AS(pool.map(square, range(10), chunksize),
                       "procpool: map's chunksize must be 0 (the pool picks) or positive, not -1",
                       std::invalid_argument);
  CHECK_THROWS_AS(pool.map(square, range(10), -5L), std::invalid_argument);
  CHECK(pool.map(square, range(10), 3).get().at(9) == 81);  // a positive int is a chunk size as before
}

namespace {
struct Tag {
  template <class Archive>
  void serialize(Archive&) {}
};
Tag tag_of(int) { return {}; }
PROCPOOL_REGISTER(tag_of);
}  // namespace

TEST_CASE("Map.ResultsOfAnEmptyTypeComeBackHoweverLargeTheChunkAsked") {
  procpool::ProcessPool pool({.workers = 1});
  CHECK(pool.map(tag_of, range(10000), 10000).get().size() == 10000);
}

TEST_CASE("Map.AChunkAnsweredWithTooFewResultsIsTheWorkersProtocolError" * doctest::timeout(60)) {
  census::Snapshot before;
  {
    procpool::ProcessPool pool({.workers = 1});
    pid_t liar = pool.worker_pids().at(0);
    // The first call writes an answer holding one result for the chunk of three.
    std::vector<std::string> inputs{"short_map_answer", "x", "y"};
    auto whole = pool.map(tasks::misbehave, inputs, 3);
    try {
      whole.get();
      FAIL("expected ProtocolError");
    } catch (const procpool::ProtocolError& e) {
      CHECK(e.pid() == liar);
      CHECK(std::string(e.what()).find("1 results for a chunk of 3 calls") != std::string::npos);
    }
    CHECK(pool.map(square, range(100), 7).get().at(99) == 99L * 99);
    CHECK(pool.worker_pids().at(0) != liar);
  }
  CHECK(census::leaks_since(before) == "");
}

namespace {
// Each element's outcome: what a Result holds, as a short string.
template <class R>
std::string outcome(procpool::Result<R>& r) {
  try {
    return std::to_string(r.value());
  } catch (const std::exception& e) {
    return std::string("!") + e.what();
  }
}
std::vector<std::string> expected_outcomes(int n) {
  std::vector<std::string> out;
  for (int x = 0; x < n; ++x)
    out.push_back(x > 0 && x % 1000 == 0 ? "!rejected " + std::to_string(x) : std::to_string(x));
  return out;
}
}  // namespace

TEST_CASE("Map.CancelFailsTheMapWithTaskCancelledAndStopsItsChunks" * doctest::timeout(60)) {
  // Pebble's map cancel: what has not run does not run.
  procpool::ProcessPool pool({.workers = 2});
  pool.submit(tasks::noop).get();
  std::vector<int> ms(20, 100);
  auto started = std::chrono::steady_clock::now();
  auto f = pool.map(tasks::sleep_ms, ms, 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(f.cancel());
  CHECK(f.cancelled());
  CHECK_THROWS_AS(f.get(), procpool::TaskCancelled);
  CHECK_FALSE(f.cancel());  // settled
  // Serial on two workers, the 20 calls would take a second: the running
  // ones were stopped, the rest withdrawn, so the pool is free long before.
  CHECK(pool.submit(tasks::add, 2, 3).get() == 5);
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::milliseconds(700));
  auto stats = pool.stats();
  CHECK(stats.cancelled >= 18);  // every chunk but those racing their answer
  auto done = pool.map(tasks::sleep_ms, std::vector<int>{1, 1}, 1);
  done.wait();
  CHECK_FALSE(done.cancel());  // a map that has its results keeps them
  CHECK(done.get().size() == 2);
}

TEST_CASE("Map.ImapCancelGivesTheUnreadElementsTaskCancelled" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 2});
  auto stream = pool.imap(tasks::sleep_ms, std::vector<int>(20, 100), 1);
  auto first = stream.next();
  REQUIRE(first.has_value());
  CHECK(stream.cancel() >= 16);  // all but the chunks racing their answers
  size_t cancelled = 0, read = 1;
  for (auto& r : stream) {
    ++read;
    if (!r.has_value()) {
      CHECK_THROWS_AS(r.value(), procpool::TaskCancelled);
      ++cancelled;
    }
  }
  CHECK(read == 20);
  CHECK(cancelled >= 16);
}

TEST_CASE("Map.LeavingAnImapWithdrawsTheChunksNoWorkerHasBegun" * doctest::timeout(60)) {
  // As a concurrent.futures map iterator, closed, cancels the calls it has
  // not yielded: the pool is free once the chunks running have ended.
  procpool::ProcessPool pool({.workers = 2});
  pool.submit(tasks::noop).get();
  for (int unordered = 0; unordered < 2; ++unordered) {
    auto before = pool.stats();
    if (unordered) {
      auto stream = pool.imap_unordered(tasks::sleep_ms, std::vector<int>(20, 100), 1);
      CHECK(stream.next().result.has_value());
    } else {
      auto stream = pool.imap(tasks::sleep_ms, std::vector<int>(20, 100), 1);
      CHECK(stream.next().has_value());
      stream = pool.imap(tasks::sleep_ms, std::vector<int>{}, 1);  // leaves the first, as its end would
    }
    auto left = std::chrono::steady_clock::now();
    CHECK(pool.submit(tasks::add, 1, 1).get() == 2);
    // At most the chunk each worker runs and the one at its front (100 ms
    // each) stood before it; all 20 would have taken a second.
    CHECK(std::chrono::steady_clock::now() - left < std::chrono::milliseconds(500));
    auto after = pool.stats();
    CHECK(after.cancelled - before.cancelled >= 12);     // of 20: not those done, running or at a front
    CHECK(after.worker_deaths == before.worker_deaths);  // no worker was stopped for it
  }
}

TEST_CASE("Map.ReturnExceptionsGivesEachElementItsOwnOutcome" * doctest::timeout(30)) {
  census::Snapshot before;
  long states_before = procpool::detail::StateBase::live_count();
  {
    procpool::ProcessPool pool({.workers = 2});
    for (size_t chunk : {size_t{0}, size_t{1}, size_t{100}, size_t{5000}}) {
      CAPTURE(chunk);
      std::vector<procpool::Result<int>> out =
          pool.map(procpool::return_exceptions, reject_thousands, range(5000), chunk).get();
      std::vector<std::string> seen;
      for (auto& r : out) seen.push_back(outcome(r));
      CHECK(seen == expected_outcomes(5000));                        // the calls after a throw in its chunk ran too
      CHECK_THROWS_AS(out.at(1000).value(), std::invalid_argument);  // the same type
    }
  }
  CHECK(procpool::detail::StateBase::live_count() == states_before);
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Map.ReturnExceptionsOfAVoidFunctionRunsEveryCall" * doctest::timeout(30)) {
  std::string path = "/tmp/procpool-test-map-each-void-" + std::to_string(getpid());
  std::remove(path.c_str());
  {
    procpool::ProcessPool pool({.workers = 2});
    std::vector<procpool::Result<void>> out =
        pool.map(procpool::return_exceptions, append_line, std::vector<std::string>(50, path), 8).get();
    CHECK(out.size() == 50);
    CHECK(std::all_of(out.begin(), out.end(), [](auto& r) { return r.has_value(); }));
  }
  std::ifstream lines(path);
  int count = 0;
  for (std::string line; std::getline(lines, line);) ++count;
  CHECK(count == 50);
  std::remove(path.c_str());
}

TEST_CASE("Map.ReturnExceptionsFailsOnlyTheCrashedChunksElements" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 2});
  std::vector<std::string> in{"x", "y", "segv", "z", "w", "v"};
  auto out = pool.map(procpool::return_exceptions, echo_or_crash, in, 3).get();
  REQUIRE(out.size() == 6);
  for (size_t i = 0; i < 3; ++i) CHECK_THROWS_AS(out[i].value(), procpool::WorkerCrashed);  // the lost answer
  for (size_t i = 3; i < 6; ++i) CHECK(out[i].value() == in[i]);
}

TEST_CASE("Map.ImapGivesEachOutcomeInInputOrder" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 2});
  for (size_t chunk : {size_t{0}, size_t{1}, size_t{333}}) {
    CAPTURE(chunk);
    auto stream = pool.imap(reject_thousands, range(3000), chunk);
    CHECK(stream.size() == 3000);
    std::vector<std::string> seen;
    for (procpool::Result<int> r : stream) seen.push_back(outcome(r));
    CHECK(seen == expected_outcomes(3000));
    CHECK(stream.done());
    CHECK_THROWS_AS(stream.next(), procpool::Error);
  }
}

TEST_CASE("Map.ImapGivesTheFirstResultBeforeTheLastCallIsDone" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 2});
  auto start = std::chrono::steady_clock::now();
  auto stream = pool.imap(tasks::sleep_ms, std::vector<int>{10, 600}, 1);
  CHECK(stream.next().value() == 10);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(500));
  CHECK(stream.next().value() == 600);
}

TEST_CASE("Map.ImapUnorderedGivesEachOutcomeOnceAsChunksAreAnswered" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 2, .prefetch_per_worker = 1});  // no chunk waits behind the slow one
  // The first chunk is the slow one: its outcomes come last.
  std::vector<int> in{400, 1, 2, 3, 4, 5};
  std::vector<size_t> order;
  for (auto [i, r] : pool.imap_unordered(tasks::sleep_ms, in, 1)) {
    CHECK(r.value() == in[i]);
    order.push_back(i);
  }
  REQUIRE(order.size() == 6);
  CHECK(order.back() == 0);
  std::sort(order.begin(), order.end());
  CHECK(order == std::vector<size_t>{0, 1, 2, 3, 4, 5});

  std::vector<std::string> seen(3000);
  for (auto [i, r] : pool.imap_unordered(reject_thousands, range(3000), 64)) seen.at(i) = outcome(r);
  CHECK(seen == expected_outcomes(3000));
}

TEST_CASE("Map.ImapOfAnUnregisteredFunctionGivesUnknownFunctionPerElement" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  int n = 0;
  for (auto r : pool.imap(not_registered, range(5), 2)) {
    CHECK_THROWS_AS(r.value(), procpool::UnknownFunction);
    ++n;
  }
  CHECK(n == 5);
}
