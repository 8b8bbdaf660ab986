// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <map>

#include "support/census.hpp"
#include "support/task_functions.hpp"
#include "support/test_files.hpp"

namespace {

struct Expected {
  const char* how;
  int signal;     // 0 when it exits
  int exit_code;  // -1 when killed
  const char* message;
};

void crash_fails_only_that_task(const Expected& x) {
  CAPTURE(x.how);
  census::Snapshot before;
  std::string path = temp_path(x.how);
  std::remove(path.c_str());
  {
    // One worker: the queued calls sit behind the crashing one in its ring.
    procpool::ProcessPool pool({.workers = 1});
    pid_t victim = pool.worker_pids().at(0);
    auto crashed = pool.submit(tasks::crash, std::string(x.how));
    std::vector<procpool::Future<int>> queued;
    for (int i = 0; i < 5; ++i) queued.push_back(pool.submit(tasks::record_run, path, i));
    try {
      crashed.get();
      FAIL("expected WorkerCrashed");
    } catch (const procpool::WorkerCrashed& e) {
      CHECK(e.signal() == x.signal);
      CHECK(e.exit_code() == x.exit_code);
      CHECK(e.pid() == victim);
      CHECK(e.function() == "crash");
      CHECK(std::string(e.what()).find(x.message) != std::string::npos);
    }
    for (int i = 0; i < 5; ++i) CHECK(queued[static_cast<size_t>(i)].get() == i);
    auto runs = runs_in(path);
    for (int i = 0; i < 5; ++i) CHECK(runs[i] == 1);  // re-sent, never run twice
    CHECK(pool.submit(tasks::add, 2, 2).get() == 4);
    CHECK(pool.worker_pids().at(0) != victim);
  }
  std::remove(path.c_str());
  CHECK(census::leaks_since(before) == "");
}

}  // namespace

TEST_CASE("CrashIsolation.SegfaultFailsOnlyThatTask" * doctest::timeout(60)) {
  crash_fails_only_that_task({"segv", SIGSEGV, -1, "killed by SIGSEGV"});
}
TEST_CASE("CrashIsolation.AbortFailsOnlyThatTask" * doctest::timeout(60)) {
  crash_fails_only_that_task({"abort", SIGABRT, -1, "killed by SIGABRT"});
}
TEST_CASE("CrashIsolation.TerminateFailsOnlyThatTask" * doctest::timeout(60)) {
  crash_fails_only_that_task({"terminate", SIGABRT, -1, "killed by SIGABRT"});
}
TEST_CASE("CrashIsolation.ExitWithCodeFailsOnlyThatTask" * doctest::timeout(60)) {
  crash_fails_only_that_task({"exit3", 0, 3, "exited with code 3"});
}
TEST_CASE("CrashIsolation.ExitZeroMidTaskFailsOnlyThatTask" * doctest::timeout(60)) {
  crash_fails_only_that_task({"exit0", 0, 0, "exited with code 0"});
}
TEST_CASE("CrashIsolation.StackOverflowFailsOnlyThatTask" * doctest::timeout(60)) {
  crash_fails_only_that_task({"stack_overflow", SIGSEGV, -1, "killed by SIGSEGV"});
}
TEST_CASE("CrashIsolation.SelfSigkillFailsOnlyThatTask" * doctest::timeout(60)) {
  crash_fails_only_that_task({"sigkill_self", SIGKILL, -1, "killed by SIGKILL"});
}

TEST_CASE("CrashIsolation.SigkillFromOutsideFailsOnlyThatTask" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 2});
  auto other = pool.submit(tasks::sleep_ms, 300);
  auto hung = pool.submit(tasks::crash, std::string("hang"));
  // Killed once it runs the call: a worker killed before it began it (one
  // still starting, under spawn and a sanitizer) would have the call
  // handed to its replacement, and this test would hang.
  REQUIRE(census::eventually([&] { return hung.running(); }, std::chrono::seconds(30)));
  pid_t target = hung.status().worker;
  REQUIRE(target > 0);
  ::kill(target, SIGKILL);
  try {
    hung.get();
    FAIL("expected WorkerCrashed");
  } catch (const procpool::WorkerCrashed& e) {
    CHECK(e.signal() == SIGKILL);
    CHECK(e.pid() == target);
  }
  CHECK(other.get() == 300);
  CHECK(pool.submit(tasks::add, 1, 1).get() == 2);
}

TEST_CASE("CrashIsolation.CrashBacktraceNamesTheFunction" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1});
  try {
    pool.submit(tasks::crash, std::string("segv")).get();
    FAIL("expected WorkerCrashed");
  } catch (const procpool::WorkerCrashed& e) {
    CHECK(e.backtrace().find("tasks::crash") != std::string::npos);
  }
}

TEST_CASE("CrashIsolation.PoolKeepsServingAfterManyCrashes" * doctest::timeout(120)) {
  procpool::ProcessPool pool({.workers = 2});
  std::vector<procpool::Future<int>> crashes, healthy;
  for (int i = 0; i < 30; ++i) {
    crashes.push_back(pool.submit(tasks::crash, std::string("segv")));
    healthy.push_back(pool.submit(tasks::identity, i));
  }
  for (auto& f : crashes) CHECK_THROWS_AS(f.get(), procpool::WorkerCrashed);
  for (int i = 0; i < 30; ++i) CHECK(healthy[static_cast<size_t>(i)].get() == i);
  CHECK(census::eventually([&] { return pool.worker_pids().size() == 2; }));  // every one replaced
}

TEST_CASE("CrashIsolation.TasksOnOtherWorkersAreUntouched" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 2, .prefetch_per_worker = 1});
  auto slow = pool.submit(tasks::sleep_ms, 200);  // takes one worker
  auto crashed = pool.submit(tasks::crash, std::string("segv"));
  CHECK_THROWS_AS(crashed.get(), procpool::WorkerCrashed);
  CHECK(slow.get() == 200);
}

TEST_CASE("CrashIsolation.IgnoredSigchldStillNamesTheSignal" * doctest::timeout(60)) {
  // An application that ignores SIGCHLD has its children reaped by the
  // kernel: the exit status is gone, the crash handler's record remains.
  struct sigaction ignore {
  }, previous{};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGCHLD, &ignore, &previous);
  {
    procpool::ProcessPool pool({.workers = 1});
    try {
      pool.submit(tasks::crash, std::string("segv")).get();
      FAIL("expected WorkerCrashed");
    } catch (const procpool::WorkerCrashed& e) {
      CHECK(e.signal() == SIGSEGV);
    }
    CHECK(pool.submit(tasks::add, 1, 2).get() == 3);
  }
  sigaction(SIGCHLD, &previous, nullptr);
}
