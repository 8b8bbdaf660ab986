// SPDX-License-Identifier: MIT
// Workers' lives, recycling: a worker ends its life after max_tasks_per_child
// calls, or after a call that left its RSS above max_worker_memory, and is
// replaced; no call waits for ever, fails or runs twice.
#include <doctest/doctest.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "support/census.hpp"
#include "support/task_functions.hpp"
#include "support/test_files.hpp"

namespace {
using namespace std::chrono_literals;

// Appends "id pid" to `path` and returns the pid: which worker ran which
// call, and how many times each call ran.
int record_pid(std::string path, int id) {
  std::ofstream(path, std::ios::app) << id << ' ' << getpid() << '\n';
  return static_cast<int>(getpid());
}
PROCPOOL_REGISTER(record_pid);

// Allocates `mib` MiB, touches every page, and keeps it (a leak).
std::vector<char*> g_leaked;  // kept reachable: the compiler may not elide the allocation
int leak_mib(int mib) {
  auto* block = new char[static_cast<size_t>(mib) << 20];
  std::memset(block, 1, static_cast<size_t>(mib) << 20);
  g_leaked.push_back(block);
  return static_cast<int>(getpid());
}
PROCPOOL_REGISTER(leak_mib);

struct Runs {
  std::map<int, int> per_id;   // id -> times run
  std::map<int, int> per_pid;  // pid -> calls served
};
Runs runs_and_pids_in(const std::string& path) {
  Runs r;
  std::ifstream in(path);
  for (int id, pid; in >> id >> pid;) {
    ++r.per_id[id];
    ++r.per_pid[pid];
  }
  return r;
}

// A stalled pool fails the test instead of hanging it.
template <class T>
T get_soon(procpool::Future<T>& f) {
  REQUIRE_MESSAGE(f.wait_for(10s), "the call did not settle within 10 s: the pool stalled");
  return f.get();
}

void each_worker_serves_at_most(size_t per_child, size_t workers, int calls) {
  CAPTURE(per_child);
  census::Snapshot before;
  std::string path = temp_path("calls");
  std::remove(path.c_str());
  {
    procpool::ProcessPool pool({.workers = workers, .max_tasks_per_child = per_child});
    std::vector<procpool::Future<int>> futures;
    for (int i = 0; i < calls; ++i) futures.push_back(pool.submit(record_pid, path, i));
    for (auto& f : futures) CHECK(get_soon(f) > 0);  // every call succeeds
    Runs runs = runs_and_pids_in(path);
    CHECK(runs.per_id.size() == static_cast<size_t>(calls));
    for (auto [id, n] : runs.per_id) CHECK_MESSAGE(n == 1, "call " << id << " ran " << n << " times");
    for (auto [pid, n] : runs.per_pid)
      CHECK_MESSAGE(static_cast<size_t>(n) <= per_child, "worker " << pid << " served " << n);
    CHECK(runs.per_pid.size() >= static_cast<size_t>(calls) / per_child);
  }
  std::remove(path.c_str());
  CHECK(census::leaks_since(before) == "");
}

}  // namespace

TEST_CASE("Recycling.OneCallPerChildRunsEveryCallOnceInItsOwnWorker" * doctest::timeout(60)) {
  each_worker_serves_at_most(1, 2, 60);
}

TEST_CASE("Recycling.ThreeCallsPerChildRunsEveryCallOnce" * doctest::timeout(60)) {
  each_worker_serves_at_most(3, 3, 150);
}

TEST_CASE("Recycling.ABurstWithOneCallPerChildDoesNotStall" * doctest::timeout(60)) {
  census::Snapshot before;
  {
    procpool::ProcessPool pool({.workers = 2, .max_tasks_per_child = 1});
    auto t0 = std::chrono::steady_clock::now();
    std::vector<procpool::Future<int>> futures;
    for (int i = 0; i < 200; ++i) futures.push_back(pool.submit(tasks::add, i, 1));
    for (int i = 0; i < 200; ++i) CHECK(get_soon(futures[static_cast<size_t>(i)]) == i + 1);
    auto took = std::chrono::steady_clock::now() - t0;
    MESSAGE("200 calls, one per worker: " << std::chrono::duration<double, std::milli>(took).count() << " ms");
    CHECK(took < 20s);
    // Each call retired its worker; none of them counts as a crash.
    REQUIRE(census::eventually([&] { return pool.stats().retired_after_max_tasks >= 199; }));
    procpool::PoolStats s = pool.stats();
    CHECK(s.succeeded == 200);
    CHECK(s.crashed == 0);
    CHECK(s.retired_over_memory == 0);
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Recycling.AMapChunkCountsAsOneCall" * doctest::timeout(60)) {
  census::Snapshot before;
  std::string path = temp_path("map");
  std::remove(path.c_str());
  {
    procpool::ProcessPool pool({.workers = 2, .max_tasks_per_child = 2});
    std::vector<int> ids(40);
    for (int i = 0; i < 40; ++i) ids[static_cast<size_t>(i)] = i;
    // Chunks of 5: a worker serves two chunks, ten elements, then goes.
    auto mapped = pool.map(tasks::pid_of_worker_after, ids, 5);
    auto pids = get_soon(mapped);
    REQUIRE(pids.size() == 40);
    std::map<int, int> per_pid;
    for (int pid : pids) ++per_pid[pid];
    for (auto [pid, n] : per_pid) CHECK_MESSAGE(n <= 10, "worker " << pid << " served " << n << " elements");
    CHECK(per_pid.size() >= 4);
    for (size_t i = 0; i < 40; i += 5)
      for (size_t j = i; j < i + 5; ++j) CHECK(pids[j] == pids[i]);  // a chunk runs in one worker
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Recycling.WithdrawnCallsCountOnBothSidesAndNothingStalls" * doctest::timeout(60)) {
  // One worker, three calls per life: calls cancelled in its ring are
  // answered Skipped (the worker counts them, as the host does), calls
  // cancelled before they reach it are given back: either way the host and
  // the worker agree on when its life ends, and every other call runs once.
  census::Snapshot before;
  std::string path = temp_path("withdrawn");
  std::remove(path.c_str());
  {
    procpool::ProcessPool pool({.workers = 1, .prefetch_per_worker = 4, .max_tasks_per_child = 3});
    for (int round = 0; round < 5; ++round) {
      auto slow = pool.submit(tasks::sleep_ms, 100);
      std::vector<procpool::Future<int>> calls;
      for (int i = 0; i < 8; ++i) calls.push_back(pool.submit(record_pid, path, round * 100 + i));
      for (int i = 1; i < 8; i += 2) (void)calls[static_cast<size_t>(i)].cancel();
      CHECK(get_soon(slow) >= 0);
      for (int i = 0; i < 8; i += 2) CHECK(get_soon(calls[static_cast<size_t>(i)]) > 0);
      for (int i = 1; i < 8; i += 2) {
        auto& f = calls[static_cast<size_t>(i)];
        REQUIRE(f.wait_for(10s));  // cancelled, or ran: settled either way
      }
    }
    Runs runs = runs_and_pids_in(path);
    for (auto [id, n] : runs.per_id) CHECK_MESSAGE(n == 1, "call " << id << " ran " << n << " times");
    for (auto [pid, n] : runs.per_pid) CHECK(n <= 3);
    CHECK(pool.submit(tasks::add, 1, 2).get() == 3);
  }
  std::remove(path.c_str());
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Recycling.AWorkerOverMaxWorkerMemoryIsReplacedAfterItsCall" * doctest::timeout(60)) {
  census::Snapshot before;
  std::string path = temp_path("memory");
  std::remove(path.c_str());
  {
    // Sanitizer builds map shadow memory per touched page: the limit is
    // relative to what an idle worker holds, read first.
    procpool::ProcessPool probe({.workers = 1});
    long idle = probe.submit(tasks::resident_bytes).get();
    probe.shutdown(true);
    size_t limit = static_cast<size_t>(idle) + (size_t{32} << 20);
    procpool::ProcessPool pool({.workers = 1, .max_worker_memory = limit});
    pid_t first = pool.worker_pids().at(0);
    CHECK(pool.submit(record_pid, path, 0).get() == first);  // under the limit: the worker stays
    auto leaker = pool.submit(leak_mib, 64);
    std::vector<procpool::Future<int>> queued;  // behind it in its ring
    for (int i = 1; i <= 5; ++i) queued.push_back(pool.submit(record_pid, path, i));
    CHECK(get_soon(leaker) == first);                    // the call that went over succeeds
    for (auto& f : queued) CHECK(get_soon(f) != first);  // untouched, run by the replacement
    Runs runs = runs_and_pids_in(path);
    for (auto [id, n] : runs.per_id) CHECK(n == 1);
    CHECK(runs.per_id.size() == 6);
    CHECK(pool.worker_pids().at(0) != first);
    CHECK(pool.stats().retired_over_memory == 1);
    CHECK(pool.stats().retired_after_max_tasks == 0);
  }
  std::remove(path.c_str());
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Recycling.WithoutLimitsAWorkerServesOnAndKeepsItsLeak" * doctest::timeout(60)) {
  // The control for the two above: with neither option, one worker serves it all.
  procpool::ProcessPool pool({.workers = 1});
  pid_t first = pool.worker_pids().at(0);
  CHECK(pool.submit(leak_mib, 64).get() == first);
  for (int i = 0; i < 20; ++i) CHECK(pool.submit(tasks::pid_of_worker).get() == first);
}
