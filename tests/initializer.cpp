// SPDX-License-Identifier: MIT
// Workers' lives, the initializer: run once in each new worker before its
// calls; one that throws, crashes or hangs is a failed start, and
// max_failed_starts of those in a row break the pool with PoolBroken,
// which names the cause, fails every pending and later call, and forks no
// more; one that fails once and then succeeds recovers.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "support/census.hpp"
#include "support/task_functions.hpp"
#include "support/test_files.hpp"

namespace {
using namespace std::chrono_literals;

int g_seed = 0;  // set by the initializer, in each worker

// Appends this worker's pid to `path` (a count of starts that crosses
// processes), sets the seed.
void note_start(const std::string& path) { std::ofstream(path, std::ios::app) << getpid() << '\n'; }
void init_seed(std::string path, int seed) {
  note_start(path);
  g_seed = seed;
}
PROCPOOL_REGISTER(init_seed);
int read_seed() { return g_seed * 1000000 + static_cast<int>(getpid() % 1000000); }
PROCPOOL_REGISTER(read_seed);

void init_always_fails(std::string path) {
  note_start(path);
  throw std::runtime_error("no model file at /models/x.bin");
}
PROCPOOL_REGISTER(init_always_fails);

size_t lines_in(const std::string& path) {
  std::ifstream in(path);
  size_t n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

void init_fails_once(std::string path) {
  bool first = lines_in(path) == 0;
  note_start(path);
  if (first) throw std::runtime_error("the first start fails");
}
PROCPOOL_REGISTER(init_fails_once);

// Starts overlap (a slot's replacement and a spare): the count is read and
// extended under a lock, so that starts alternate in the order they take it.
void init_fails_every_other_start(std::string path) {
  int fd = ::open((path + ".lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0 || ::flock(fd, LOCK_EX) != 0) throw std::runtime_error("cannot lock the count of starts");
  bool odd = lines_in(path) % 2 == 0;
  note_start(path);
  ::close(fd);  // releases the lock
  if (odd) throw std::runtime_error("an odd start fails");
}
PROCPOOL_REGISTER(init_fails_every_other_start);

void init_crashes(std::string path) {
  note_start(path);
  ::raise(SIGSEGV);
}
PROCPOOL_REGISTER(init_crashes);

void init_hangs(std::string path) {
  note_start(path);
  for (;;) ::pause();
}
PROCPOOL_REGISTER(init_hangs);

void not_registered(int) {}

struct TempFile {
  explicit TempFile(const char* tag) : path(temp_path(tag)) { std::remove(path.c_str()); }
  ~TempFile() { std::remove(path.c_str()); }
  std::string path;
};

// The PoolBroken a call fails with (REQUIREs that it does, within 10 s).
template <class T>
std::string broken_message(procpool::Future<T>& f, std::exception_ptr* nested = nullptr) {
  REQUIRE_MESSAGE(f.wait_for(10s), "the call did not settle within 10 s");
  try {
    f.get();
  } catch (const procpool::PoolBroken& e) {
    if (nested) {
      try {
        std::rethrow_if_nested(e);
      } catch (...) {
        *nested = std::current_exception();
      }
    }
    return e.what();
  } catch (const std::exception& e) {
    FAIL("expected PoolBroken, got " << std::string(e.what()));
  }
  FAIL("expected PoolBroken, the call succeeded");
  return "";
}

void init_with_half_saved(tasks::HalfSaved) {}
PROCPOOL_REGISTER(init_with_half_saved);

}  // namespace

TEST_CASE("Initializer.RunsOnceInEachWorkerBeforeItsCalls" * doctest::timeout(60)) {
  census::Snapshot before;
  TempFile starts("seed");
  std::map<int, int> served;  // pid (mod 1e6) -> calls
  {
    // One call per worker: each call meets a new worker, initialized once.
    procpool::ProcessPool pool(
        {.workers = 2, .max_tasks_per_child = 1, .initializer = procpool::initializer(init_seed, starts.path, 42)});
    std::vector<procpool::Future<int>> futures;
    for (int i = 0; i < 20; ++i) futures.push_back(pool.submit(read_seed));
    for (auto& f : futures) {
      REQUIRE(f.wait_for(10s));
      int v = f.get();
      CHECK(v / 1000000 == 42);
      ++served[v % 1000000];
    }
  }
  std::map<int, int> inits;
  {
    std::ifstream in(starts.path);
    for (int pid; in >> pid;) ++inits[pid % 1000000];
  }
  for (auto [pid, n] : served)
    CHECK_MESSAGE(inits[pid] == 1, "worker " << pid << " initialized " << inits[pid] << " times");
  for (auto [pid, n] : inits) CHECK(n == 1);
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Initializer.AlwaysFailingBreaksThePoolWithItsCause" * doctest::timeout(60)) {
  census::Snapshot before;
  TempFile starts("fails");
  {
    procpool::ProcessPool pool(
        {.workers = 2, .initializer = procpool::initializer(init_always_fails, starts.path), .max_failed_starts = 3});
    std::vector<procpool::Future<int>> pending;
    for (int i = 0; i < 5; ++i) pending.push_back(pool.submit(tasks::add, i, 1));
    for (auto& f : pending) {
      std::exception_ptr cause;
      std::string what = broken_message(f, &cause);
      CHECK(what.find("no model file at /models/x.bin") != std::string::npos);
      CHECK(what.find("std::runtime_error") != std::string::npos);
      CHECK(what.find("'init_always_fails' (the initializer)") != std::string::npos);
      // At least max_failed_starts: a start still under way when the third
      // failed (the other slot's) decides the row too.
      auto row = what.find(" workers in a row failed to start (max_failed_starts)");
      REQUIRE(row != std::string::npos);
      CHECK(std::stoi(what.substr(what.rfind(' ', row - 1) + 1)) >= 3);
      REQUIRE(cause);
      CHECK_THROWS_WITH_AS(std::rethrow_exception(cause), "no model file at /models/x.bin", std::runtime_error);
    }
    auto later = pool.submit(tasks::add, 1, 1);
    CHECK(broken_message(later).find("no model file") != std::string::npos);
    // No fork bomb: three failed starts, and the other first worker's.
    std::this_thread::sleep_for(300ms);
    size_t forks = lines_in(starts.path);
    CHECK(forks >= 3);
    CHECK(forks <= 3 + 2 - 1);
    std::this_thread::sleep_for(300ms);
    CHECK(lines_in(starts.path) == forks);
    CHECK(pool.worker_pids().empty());
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Initializer.FailingOnceThenSucceedingRecovers" * doctest::timeout(60)) {
  census::Snapshot before;
  TempFile starts("once");
  {
    // No spare (spare_workers = 0): its start would count as a third.
    procpool::ProcessPool pool({.workers = 1,
                                .initializer = procpool::initializer(init_fails_once, starts.path),
                                .max_failed_starts = 2,
                                .spare_workers = 0});
    std::vector<procpool::Future<int>> futures;
    for (int i = 0; i < 10; ++i) futures.push_back(pool.submit(tasks::add, i, 1));
    for (int i = 0; i < 10; ++i) {
      REQUIRE(futures[static_cast<size_t>(i)].wait_for(10s));
      CHECK(futures[static_cast<size_t>(i)].get() == i + 1);
    }
    CHECK(lines_in(starts.path) == 2);
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Initializer.FailuresSeparatedByGoodStartsNeverBreakThePool" * doctest::timeout(60)) {
  // Every other start fails, and each good worker serves one call and goes:
  // failures are never max_failed_starts (2) in a row. With a spare (the
  // default) the slot's replacement and the spare start side by side, and
  // the host may see a later start succeed before it reaps an earlier one
  // that failed: that failure must not begin a row.
  size_t spare_workers = procpool::PoolOptions{}.spare_workers;
  SUBCASE("spare workers as by default") {}
  SUBCASE("no spare: one start at a time") { spare_workers = 0; }
  census::Snapshot before;
  TempFile starts("alternate");
  {
    procpool::ProcessPool pool({.workers = 1,
                                .max_tasks_per_child = 1,
                                .initializer = procpool::initializer(init_fails_every_other_start, starts.path),
                                .max_failed_starts = 2,
                                .spare_workers = spare_workers});
    for (int i = 0; i < 6; ++i) {
      auto f = pool.submit(tasks::add, i, 1);
      REQUIRE(f.wait_for(10s));
      CHECK(f.get() == i + 1);
    }
    CHECK(lines_in(starts.path) >= 12);
  }
  std::remove((starts.path + ".lock").c_str());
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Initializer.CrashingIsReportedWithItsSignal" * doctest::timeout(60)) {
  census::Snapshot before;
  TempFile starts("crash");
  {
    procpool::ProcessPool pool(
        {.workers = 1, .initializer = procpool::initializer(init_crashes, starts.path), .max_failed_starts = 2});
    auto f = pool.submit(tasks::add, 1, 2);
    std::exception_ptr cause;
    std::string what = broken_message(f, &cause);
    CHECK(what.find("killed by SIGSEGV") != std::string::npos);
    CHECK(what.find("'init_crashes' (the initializer)") != std::string::npos);
    REQUIRE(cause);
    try {
      std::rethrow_exception(cause);
    } catch (const procpool::WorkerCrashed& e) {
      CHECK(e.signal() == SIGSEGV);
    } catch (...) {
      FAIL("the nested cause is not a WorkerCrashed");
    }
    CHECK(lines_in(starts.path) == 2);
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Initializer.HangingPastStartTimeoutBreaksThePool" * doctest::timeout(60)) {
  census::Snapshot before;
  TempFile starts("hang");
  {
    procpool::ProcessPool pool({.workers = 1,
                                .start_timeout = 300ms,
                                .initializer = procpool::initializer(init_hangs, starts.path),
                                .max_failed_starts = 2});
    auto t0 = std::chrono::steady_clock::now();
    auto f = pool.submit(tasks::add, 1, 2);
    std::string what = broken_message(f);
    CHECK(std::chrono::steady_clock::now() - t0 >= 600ms);
    CHECK(what.find("within 300 ms (start_timeout)") != std::string::npos);
    CHECK(what.find("'init_hangs' (the initializer) was still running") != std::string::npos);
    CHECK(lines_in(starts.path) == 2);
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Initializer.OfAnUnregisteredFunctionIsRefusedWhenMade" * doctest::timeout(10)) {
  CHECK_THROWS_AS(procpool::initializer(not_registered, 1), procpool::UnknownFunction);
}

TEST_CASE("Initializer.WhoseArgumentsCannotBeEncodedIsRefusedWhenMade" * doctest::timeout(10)) {
  CHECK_THROWS_WITH_AS(procpool::initializer(init_with_half_saved, tasks::HalfSaved{"abc"}),
                       "'init_with_half_saved': the initializer's arguments could not be encoded: cannot save the rest",
                       procpool::SerializationError);
}
