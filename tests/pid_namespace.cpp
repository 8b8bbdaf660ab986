// SPDX-License-Identifier: MIT
// Namespaces::pid: a worker that can neither see nor signal the host, and
// that ends, is stopped and is counted as a worker without one would be.
#include <doctest/doctest.h>

#include <dirent.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <procpool/procpool.hpp>

#include "support/census.hpp"
#include "support/task_functions.hpp"

namespace {

std::vector<int> listed_processes() {
  std::vector<int> pids;
  DIR* d = ::opendir("/proc");
  if (!d) return pids;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end == '\0' && pid > 0) pids.push_back(static_cast<int>(pid));
  }
  ::closedir(d);
  return pids;
}

// What a worker sees of processes, as one line.
std::string process_view(int host) {
  std::string v = "self=" + std::to_string(::getpid()) + " parent=" + std::to_string(::getppid()) + " listed=";
  for (int pid : listed_processes()) v += std::to_string(pid) + ",";
  v += " kill_host=" + std::to_string(::kill(host, 0) == 0 ? 0 : errno);
  v += " host_in_proc=" + std::to_string(::access(("/proc/" + std::to_string(host)).c_str(), F_OK) == 0);
  return v;
}
PROCPOOL_REGISTER(process_view);

// Tries to end the namespace's init, then answers.
int kill_init() {
  ::kill(1, SIGKILL);
  return 7;
}
PROCPOOL_REGISTER(kill_init);

int hold_mebibytes(int n) {
  static std::vector<char> held;
  held.assign(static_cast<size_t>(n) << 20, 1);
  return n;
}
PROCPOOL_REGISTER(hold_mebibytes);

// The processes of process group `pgid` (/proc/<pid>/stat's fifth field).
std::vector<pid_t> group_members(pid_t pgid) {
  std::vector<pid_t> members;
  for (int pid : listed_processes()) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE* f = std::fopen(path, "re");
    if (!f) continue;
    char buf[512] = {};
    size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    std::string stat(buf, n);
    size_t close = stat.rfind(')');
    int group = 0;
    if (close != std::string::npos && std::sscanf(stat.c_str() + close + 1, " %*c %*d %d", &group) == 1 &&
        group == pgid)
      members.push_back(pid);
  }
  return members;
}

pid_t keeper_of(procpool::ProcessPool& pool, size_t index = 0) {
  pid_t pid = 0;
  census::eventually([&] { return (pid = pool.stats().workers.at(index).pid) != 0; });
  return pid;
}

procpool::PoolOptions pid_namespace_pool(size_t workers = 1) {
  return {.workers = workers, .namespaces = {.pid = true}};
}

}  // namespace

TEST_CASE("PidNamespace.AWorkerSeesOnlyItsNamespaceAndCannotSignalTheHost" * doctest::timeout(60)) {
  procpool::ProcessPool pool(pid_namespace_pool());
  std::string view = pool.submit(process_view, static_cast<int>(::getpid())).get();
  CHECK(view == "self=2 parent=1 listed=1,2, kill_host=" + std::to_string(ESRCH) + " host_in_proc=0");
  // Without the namespace it sees the host (its parent).
  procpool::ProcessPool open({.workers = 1});
  CHECK(open.submit(process_view, static_cast<int>(::getpid())).get().find("kill_host=0 host_in_proc=1") !=
        std::string::npos);
}

TEST_CASE("PidNamespace.AWorkerCannotEndItsInit" * doctest::timeout(60)) {
  procpool::ProcessPool pool(pid_namespace_pool());
  pid_t keeper = keeper_of(pool);
  CHECK(pool.submit(kill_init).get() == 7);
  CHECK(pool.submit(tasks::add, 2, 3).get() == 5);
  CHECK(pool.stats().workers.at(0).pid == keeper);  // never replaced
  CHECK(pool.stats().crashed == 0);
}

TEST_CASE("PidNamespace.AWorkerEndsAsItWouldWithout" * doctest::timeout(120)) {
  // The worker is not its namespace's init (which the kernel spares the
  // signals it sends itself): its crash's re-raise, abort() and
  // raise(SIGKILL) end it, and the host reads the same status.
  procpool::ProcessPool pool(pid_namespace_pool());
  struct Case {
    const char* how;
    int signal;
    int exit_code;
  };
  for (Case c : {Case{"segv", SIGSEGV, -1}, Case{"abort", SIGABRT, -1}, Case{"sigkill_self", SIGKILL, -1},
                 Case{"exit3", 0, 3}, Case{"stack_overflow", SIGSEGV, -1}}) {
    std::string how = c.how;
    CAPTURE(how);
    try {
      pool.submit(tasks::crash, std::string(c.how)).get();
      FAIL("no crash");
    } catch (const procpool::WorkerCrashed& e) {
      CHECK(e.signal() == c.signal);
      CHECK(e.exit_code() == c.exit_code);
      if (how == "segv") CHECK(e.backtrace().find("crash") != std::string::npos);
    }
    CHECK(pool.submit(tasks::add, 1, 2).get() == 3);
  }
}

TEST_CASE("PidNamespace.ASignalSentToTheWorkersPidReachesTheWorker" * doctest::timeout(60)) {
  // The pid the host knows (the keeper's) stands for the worker: what is
  // sent to it is forwarded, and the worker's end is the call's.
  procpool::ProcessPool pool(pid_namespace_pool());
  pid_t keeper = keeper_of(pool);
  auto sleeping = pool.submit(tasks::sleep_ms, 30000);
  REQUIRE(census::eventually([&] { return sleeping.running(); }));
  REQUIRE(::kill(keeper, SIGUSR1) == 0);
  try {
    sleeping.get();
    FAIL("the call survived SIGUSR1");
  } catch (const procpool::WorkerCrashed& e) {
    CHECK(e.signal() == SIGUSR1);
    CHECK(e.pid() == keeper);
  }
  CHECK(pool.submit(tasks::add, 1, 2).get() == 3);
}

TEST_CASE("PidNamespace.DeadlinesCancelsAndShutdownLeaveNoProcessBehind" * doctest::timeout(120)) {
  census::Snapshot before;
  std::vector<pid_t> groups;
  {
    procpool::ProcessPool pool(pid_namespace_pool(2));
    for (size_t i = 0; i < 2; ++i) {
      groups.push_back(keeper_of(pool, i));
      // Keeper, init and worker, in the keeper's process group.
      CHECK(census::eventually([&] { return group_members(groups.back()).size() == 3; }));
    }
    // A deadline kills a worker in the namespace; its group goes with it.
    auto late = pool.submit_with({.timeout = std::chrono::milliseconds(200)}, tasks::sleep_ms, 30000);
    CHECK_THROWS_AS(late.get(), procpool::TaskTimeout);
    // A running call cancelled.
    auto running = pool.submit(tasks::sleep_ms, 30000);
    REQUIRE(census::eventually([&] { return running.running(); }));
    CHECK(running.cancel());
    CHECK(pool.submit(tasks::add, 2, 2).get() == 4);
    for (size_t i = 0; i < 2; ++i) groups.push_back(keeper_of(pool, i));
    // terminate() with a call running.
    auto busy = pool.submit(tasks::sleep_ms, 30000);
    REQUIRE(census::eventually([&] { return busy.running(); }));
    pool.terminate();
    CHECK_THROWS(busy.get());
  }
  for (pid_t g : groups) {
    CAPTURE(g);
    CHECK(census::eventually([&] { return group_members(g).empty(); }));
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("PidNamespace.TheHostKilledLeavesNoProcessOfTheNamespaceBehind" * doctest::timeout(60)) {
  REQUIRE(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
  census::ForkedHost host = census::fork_host(3, [] {
    static procpool::ProcessPool* pool = new procpool::ProcessPool(pid_namespace_pool());
    pid_t keeper = keeper_of(*pool);
    std::vector<pid_t> members;
    census::eventually([&] { return (members = group_members(keeper)).size() == 3; });
    return members;
  });
  REQUIRE(host.reported.size() == 3);
  ::kill(host.pid, SIGKILL);
  ::waitpid(host.pid, nullptr, 0);
  CHECK(census::eventually([&] { return census::orphans_gone(host.processes()); }));
  prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST_CASE("PidNamespace.StatisticsCountTheWorkersMemoryNotItsKeepers" * doctest::timeout(60)) {
  procpool::ProcessPool pool(pid_namespace_pool());
  CHECK(pool.submit(hold_mebibytes, 64).get() == 64);
  CHECK(pool.stats().workers.at(0).rss_bytes >= (64u << 20));
}

TEST_CASE("PidNamespace.WorksWithTheOtherNamespacesAndTheStrictestSandbox" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1,
                              .sandbox = procpool::Sandbox::compute_only(),
                              .namespaces = {.network = true, .ipc = true, .mount = true, .uts = true, .pid = true}});
  CHECK(pool.submit(tasks::add, 20, 22).get() == 42);
  try {
    pool.submit(tasks::crash, std::string("segv")).get();
    FAIL("no crash");
  } catch (const procpool::WorkerCrashed& e) {
    CHECK(e.signal() == SIGSEGV);
  }
  CHECK(pool.submit(tasks::add, 1, 2).get() == 3);
}
