// SPDX-License-Identifier: MIT
// ProcessPool::map: many calls of one function, in chunks of one frame each.
#include <doctest/doctest.h>

#include <fstream>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

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

void append_line(std::string path) {
  std::ofstream(path, std::ios::app) << "ran\n";
}
PROCPOOL_REGISTER(append_line);

long not_registered(int x) { return x; }

std::vector<int> range(int n) {
  std::vector<int> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

}  // namespace

TEST_CASE("Map.ReturnsEveryResultInInputOrder") {
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
