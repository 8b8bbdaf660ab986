// SPDX-License-Identifier: MIT
// Spare workers (PoolOptions::spare_workers): forked once the pool has had
// to replace a worker, initialized, idle; a slot that loses its process
// takes one at once. They die with the pool, and one that dies idle is
// replaced without a call noticing.
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "support/census.hpp"
#include "support/task_functions.hpp"

namespace {
using namespace std::chrono_literals;

int spin_until_killed() {
  for (;;) asm volatile("");
}
PROCPOOL_REGISTER(spin_until_killed);

// The initializer: records this process's pid in `path`, and fails while
// the file `refuse` exists.
std::string g_initialized_by;
void note_start(std::string path, std::string refuse) {
  std::ofstream(path, std::ios::app) << getpid() << '\n';
  if (std::ifstream(refuse).good()) throw std::runtime_error("refused by the test");
  g_initialized_by = path;
}
PROCPOOL_REGISTER(note_start);
std::string initialized_by() { return g_initialized_by; }
PROCPOOL_REGISTER(initialized_by);

std::vector<pid_t> lines_of(const std::string& path) {
  std::vector<pid_t> pids;
  std::ifstream in(path);
  for (pid_t p; in >> p;) pids.push_back(p);
  return pids;
}

// Whether `pid`'s initializer has recorded it in `path`.
bool ran_initializer(const std::string& path, pid_t pid) {
  auto pids = lines_of(path);
  return std::find(pids.begin(), pids.end(), pid) != pids.end();
}

struct TempPath {
  std::string path;
  explicit TempPath(const char* what)
      : path("/tmp/procpool-spare-" + std::string(what) + "-" + std::to_string(getpid())) {
    std::remove(path.c_str());
  }
  ~TempPath() { std::remove(path.c_str()); }
};

// The children of this process that are not in a slot: the spares (and
// workers on their way out, none in these tests once they are reaped).
std::vector<pid_t> spare_pids(procpool::ProcessPool& pool) {
  auto workers = pool.worker_pids();
  std::vector<pid_t> spares;
  for (pid_t p : census::worker_children())
    if (std::find(workers.begin(), workers.end(), p) == workers.end()) spares.push_back(p);
  return spares;
}

// Makes the pool replace its one worker (a crash), then waits for a spare.
void lose_a_worker(procpool::ProcessPool& pool) {
  auto f = pool.submit(tasks::crash, std::string("segv"));
  CHECK_THROWS_AS(f.get(), procpool::WorkerCrashed);
}

}  // namespace

TEST_CASE("SpareWorkers.NoneIsForkedUntilThePoolFirstReplacesAWorker" * doctest::timeout(60)) {
  census::Snapshot before;
  {
    procpool::ProcessPool pool({.workers = 1});
    CHECK(pool.submit(tasks::add, 1, 2).get() == 3);
    std::this_thread::sleep_for(200ms);
    CHECK(pool.stats().spare_workers == 0);
    CHECK(census::worker_children().size() == 1);
    lose_a_worker(pool);
    CHECK(census::eventually([&] { return pool.stats().spare_workers == 1; }));
    CHECK(spare_pids(pool).size() == 1);
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("SpareWorkers.AWorkerStoppedForItsDeadlineIsReplacedByTheSpareBeforeTheCallFails" * doctest::timeout(60)) {
  census::Snapshot before;
  {
    procpool::ProcessPool pool({.workers = 1});
    lose_a_worker(pool);
    REQUIRE(census::eventually([&] { return pool.stats().spare_workers == 1; }));
    pid_t spare = spare_pids(pool).at(0);
    pid_t stopped = pool.worker_pids().at(0);
    auto doomed = pool.submit_with({.timeout = 50ms}, spin_until_killed);
    CHECK_THROWS_AS(doomed.get(), procpool::TaskTimeout);
    // The slot took the spare before the call was failed: no fork between.
    CHECK(pool.worker_pids() == std::vector<pid_t>{spare});
    CHECK(pool.submit(tasks::pid_of_worker).get() == spare);
    CHECK(spare != stopped);
    auto stats = pool.stats();
    CHECK(stats.spares_taken == 1);
    CHECK(stats.respawns == 2);
    // And a new spare comes in its place.
    CHECK(census::eventually([&] { return pool.stats().spare_workers == 1; }));
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("SpareWorkers.ACancelledRunningCallsWorkerIsReplacedByTheSpare" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1});
  lose_a_worker(pool);
  REQUIRE(census::eventually([&] { return pool.stats().spare_workers == 1; }));
  pid_t spare = spare_pids(pool).at(0);
  auto running = pool.submit(spin_until_killed);
  auto behind = pool.submit(tasks::pid_of_worker);
  REQUIRE(census::eventually([&] { return running.running(); }));
  CHECK(running.cancel());
  CHECK(pool.worker_pids() == std::vector<pid_t>{spare});
  CHECK(behind.get() == spare);
}

TEST_CASE("SpareWorkers.ZeroMeansNoneAndReplacementsAreForked" * doctest::timeout(60)) {
  census::Snapshot before;
  {
    procpool::ProcessPool pool({.workers = 1, .spare_workers = 0});
    for (int i = 0; i < 3; ++i) lose_a_worker(pool);
    CHECK(pool.submit(tasks::add, 2, 2).get() == 4);
    std::this_thread::sleep_for(100ms);
    auto stats = pool.stats();
    CHECK(stats.spare_workers == 0);
    CHECK(stats.spares_taken == 0);
    CHECK(stats.respawns == 3);
    CHECK(census::worker_children().size() == 1);
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("SpareWorkers.ASpareRunsTheInitializerBeforeItTakesASlot" * doctest::timeout(60)) {
  TempPath starts("starts"), refuse("refuse");
  procpool::ProcessPool pool(
      {.workers = 1, .initializer = procpool::initializer(note_start, starts.path, refuse.path)});
  lose_a_worker(pool);
  REQUIRE(census::eventually([&] { return pool.stats().spare_workers == 1; }));
  pid_t spare = spare_pids(pool).at(0);
  // Initialized while idle, before any call reached it.
  CHECK(census::eventually([&] { return ran_initializer(starts.path, spare); }));
  lose_a_worker(pool);
  CHECK(pool.submit(tasks::pid_of_worker).get() == spare);
  CHECK(pool.submit(initialized_by).get() == starts.path);
}

TEST_CASE("SpareWorkers.ASpareKilledWhileIdleIsReplacedAndNoCallNotices" * doctest::timeout(60)) {
  census::Snapshot before;
  TempPath starts("killed"), refuse("killed-refuse");
  {
    procpool::ProcessPool pool(
        {.workers = 1, .initializer = procpool::initializer(note_start, starts.path, refuse.path)});
    lose_a_worker(pool);
    REQUIRE(census::eventually([&] { return pool.stats().spare_workers == 1; }));
    REQUIRE(spare_pids(pool).size() == 1);
    pid_t spare = spare_pids(pool).at(0);
    // Killed once it has started (its initializer ran, and it said it is
    // ready microseconds later): a spare killed before that is a failed
    // start, which pauses spares (the next case).
    REQUIRE(census::eventually([&] { return ran_initializer(starts.path, spare); }));
    std::this_thread::sleep_for(50ms);
    uint64_t deaths = pool.stats().worker_deaths;
    REQUIRE(::kill(spare, SIGKILL) == 0);
    CHECK(census::eventually([&] { return !census::process_exists(spare); }));
    bool replaced = census::eventually([&] {
      auto spares = spare_pids(pool);
      return spares.size() == 1 && spares[0] != spare;
    });
    CHECK(replaced);
    CHECK(pool.stats().worker_deaths == deaths + 1);
    CHECK(pool.submit(tasks::add, 20, 22).get() == 42);
    auto stats = pool.stats();
    CHECK(stats.crashed == 1);  // lose_a_worker's only
    CHECK(stats.succeeded == 1);
  }
  CHECK(census::leaks_since(before) == "");
}

namespace {
bool waits_on_a_futex(pid_t pid) {
  std::ifstream wchan("/proc/" + std::to_string(pid) + "/wchan");
  std::string where;
  std::getline(wchan, where);
  return where.find("futex") != std::string::npos;
}
}  // namespace

TEST_CASE("SpareWorkers.ASpareThatFailsToStartPausesSparesUntilAWorkerStarts" * doctest::timeout(60)) {
  census::Snapshot before;
  TempPath starts("pause"), refuse("pause-refuse");
  {
    procpool::ProcessPool pool({.workers = 1,
                                .initializer = procpool::initializer(note_start, starts.path, refuse.path),
                                .max_failed_starts = 2});
    lose_a_worker(pool);
    // The slot's new worker has started (it serves): under forkserver and
    // spawn it may still be running its initializer when the refusal below
    // is written, and fail too.
    REQUIRE(pool.submit(tasks::add, 0, 0).get() == 0);
    REQUIRE(census::eventually([&] { return pool.stats().spare_workers == 1; }));
    pid_t spare = spare_pids(pool).at(0);
    REQUIRE(census::eventually([&] { return ran_initializer(starts.path, spare); }));
    // It said it is ready, and waits on its ring: killed before that, its
    // death would be a failed start of its own.
    REQUIRE(census::eventually([&] { return waits_on_a_futex(spare); }));
    // The next spare's initializer fails: one failed start, and no spare
    // is forked again while starts fail (the initializer is not run in a loop).
    std::ofstream(refuse.path) << "x";
    size_t runs = lines_of(starts.path).size();
    REQUIRE(::kill(spare, SIGKILL) == 0);
    CHECK(census::eventually([&] { return lines_of(starts.path).size() == runs + 1; }));
    std::this_thread::sleep_for(300ms);
    CHECK(lines_of(starts.path).size() == runs + 1);
    CHECK(pool.stats().spare_workers == 0);
    CHECK(pool.submit(tasks::add, 1, 1).get() == 2);  // the worker in the slot serves on
    // A worker that starts ends the failures: spares come back.
    std::remove(refuse.path.c_str());
    lose_a_worker(pool);
    CHECK(pool.submit(tasks::add, 2, 1).get() == 3);
    CHECK(census::eventually([&] { return pool.stats().spare_workers == 1; }));
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("SpareWorkers.RecyclingAfterEveryCallRunsEachCallOnceInBurstsAndTakesSparesBetween" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 2, .max_tasks_per_child = 1});
  std::vector<int> pids;
  auto run = [&](int calls) {
    std::vector<procpool::Future<int>> futures;
    for (int i = 0; i < calls; ++i) futures.push_back(pool.submit(tasks::pid_of_worker));
    for (auto& f : futures) {
      REQUIRE(f.wait_for(20s));
      pids.push_back(f.get());
    }
  };
  // A burst: workers retire back to back, and the forker keeps up.
  run(60);
  // Calls that come apart: each retiring worker's place is taken by a spare.
  uint64_t taken = pool.stats().spares_taken;
  auto settled = [&] {  // every worker that served has been replaced, and a spare waits
    auto workers = pool.worker_pids();
    return workers.size() == 2 && pool.stats().spare_workers == 1 &&
           std::none_of(workers.begin(), workers.end(),
                        [&](pid_t p) { return std::find(pids.begin(), pids.end(), p) != pids.end(); });
  };
  for (int i = 0; i < 5; ++i) {
    REQUIRE(census::eventually(settled));
    run(1);
  }
  REQUIRE(census::eventually(settled));
  CHECK(pool.stats().spares_taken >= taken + 5);
  std::sort(pids.begin(), pids.end());
  CHECK(std::adjacent_find(pids.begin(), pids.end()) == pids.end());  // one call per process
  CHECK(pool.stats().succeeded == 65);
}

TEST_CASE("SpareWorkers.EveryShutdownFormReapsTheSpares" * doctest::timeout(60)) {
  for (int form = 0; form < 4; ++form) {
    CAPTURE(form);
    census::Snapshot before;
    {
      procpool::ProcessPool pool({.workers = 1, .shutdown_grace = 500ms});
      lose_a_worker(pool);
      REQUIRE(census::eventually([&] { return pool.stats().spare_workers == 1; }));
      switch (form) {
        case 0:
          pool.shutdown();
          break;
        case 1:
          pool.terminate();
          break;
        case 2:
          pool.kill();
          break;
        default:
          pool.shutdown({.wait = false});
          break;
      }
      if (form < 3) CHECK(census::children().empty());
    }
    CHECK(census::eventually([] { return census::children().empty(); }));
    CHECK(census::leaks_since(before) == "");
  }
}
