// SPDX-License-Identifier: MIT
// Tasks that do things to their own process: close every descriptor, fork
// children that outlive them, call exit(). What a task does to its worker
// stays in that worker: its answer still arrives, the pool replaces the
// worker when it must, and nothing it started outlives the worker.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#include "support/census.hpp"
#include "support/task_functions.hpp"

extern char** environ;

namespace {
using namespace std::chrono_literals;

// Closes every descriptor from 3 up, as a library that daemonizes does; with
// `reuse`, opens /dev/null into the freed numbers, so that the worker's
// doorbell number now names a file that accepts any write.
int close_my_fds(int value, bool reuse) {
  ::syscall(SYS_close_range, 3u, ~0u, 0u);
  if (reuse)
    for (int i = 0; i < 8; ++i) (void)::open("/dev/null", O_WRONLY);
  return value;
}
PROCPOOL_REGISTER(close_my_fds);

// Forks a child that sleeps until killed; returns its pid. `how`:
// "fork" (fork(2)), "spawn" (posix_spawn of sleep(1), which runs no fork
// handlers), "fork_then_segv" (and then the task crashes).
__attribute__((no_sanitize("undefined"))) int start_child(std::string how) {
  pid_t child = -1;
  if (how == "spawn") {
    char arg0[] = "sleep", arg1[] = "1000";
    char* argv[] = {arg0, arg1, nullptr};
    if (posix_spawnp(&child, "sleep", nullptr, nullptr, argv, environ) != 0) return -1;
  } else {
    child = fork();
    if (child == 0)
      for (;;) pause();
  }
  if (how == "fork_then_segv") {
    // The host learns the child's pid from the file the test named.
    std::ofstream("/tmp/procpool-careless-child") << child << "\n";
    volatile int* p = nullptr;
    *p = 1;
  }
  return child;
}
PROCPOOL_REGISTER(start_child);

int exit_with(int code) {
  std::printf("a task's last words\n");
  std::exit(code);
}
PROCPOOL_REGISTER(exit_with);

// Reaps orphans that came to this process (the test is their subreaper)
// and says whether `pid` is gone. One that is not (the test fails) is
// killed here, so that a failure leaves nothing behind.
bool gone(pid_t pid) {
  if (census::eventually([&] { return census::orphans_gone({pid}); }, 5000ms)) return true;
  ::kill(pid, SIGKILL);
  census::eventually([&] { return census::orphans_gone({pid}); });
  return false;
}

// Five calls, each answered within 5 s.
void serves_calls(procpool::ProcessPool& pool) {
  for (int i = 0; i < 5; ++i) {
    auto g = pool.submit(tasks::identity, i);
    REQUIRE(g.wait_for(5s));
    CHECK(g.get() == i);
  }
}

struct Subreaper {
  Subreaper() { REQUIRE(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0); }
  ~Subreaper() { prctl(PR_SET_CHILD_SUBREAPER, 0); }
};

const char* g_exit_marker = nullptr;
void mark_exit_handler_run() {
  if (!g_exit_marker) return;
  if (FILE* f = std::fopen(g_exit_marker, "a")) {
    std::fprintf(f, "%d\n", static_cast<int>(getpid()));
    std::fclose(f);
  }
}
}  // namespace

TEST_CASE("CarelessTasks.ATaskThatClosesItsDescriptorsStillGetsItsAnswerThrough" * doctest::timeout(60)) {
  // host_spin 0: waiters sleep at once, so the answer must come through the
  // reactor, which a worker with no doorbell cannot wake.
  census::Snapshot before;
  {
    procpool::ProcessPool pool({.workers = 1, .host_spin = std::chrono::microseconds(0)});
    pid_t first = pool.worker_pids().at(0);
    auto f = pool.submit(close_my_fds, 42, false);
    REQUIRE(f.wait_for(5s));
    CHECK(f.get() == 42);
    // The worker could no longer reach the host and was replaced; the calls
    // after it are served.
    serves_calls(pool);
    CHECK(census::eventually([&] {
      auto pids = pool.worker_pids();
      return pids.size() == 1 && pids[0] != first;
    }));
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("CarelessTasks.AWorkerWhoseDoorbellNumberNowNamesAnotherFileIsStillHeard" * doctest::timeout(60)) {
  // Its writes to the "doorbell" succeed, into /dev/null: the worker cannot
  // tell. The pool's watchdog reads the rings while calls are out.
  procpool::ProcessPool pool({.workers = 1, .host_spin = std::chrono::microseconds(0)});
  auto f = pool.submit(close_my_fds, 7, true);
  REQUIRE(f.wait_for(5s));
  CHECK(f.get() == 7);
  serves_calls(pool);
}

TEST_CASE("CarelessTasks.ChildrenATaskForkedDieWhenThePoolShutsDown" * doctest::timeout(60)) {
  Subreaper subreaper;
  procpool::ProcessPool pool({.workers = 2});
  int forked = pool.submit(start_child, std::string("fork")).get();
  int spawned = pool.submit(start_child, std::string("spawn")).get();
  REQUIRE(forked > 0);
  REQUIRE(spawned > 0);
  CHECK(census::process_exists(forked));
  CHECK(census::process_exists(spawned));
  pool.shutdown(true);
  CHECK(gone(forked));
  CHECK(gone(spawned));
}

TEST_CASE("CarelessTasks.ChildrenOfATaskThatCrashedDieWithItsWorker" * doctest::timeout(60)) {
  Subreaper subreaper;
  std::remove("/tmp/procpool-careless-child");
  procpool::ProcessPool pool({.workers = 1});
  CHECK_THROWS_AS(pool.submit(start_child, std::string("fork_then_segv")).get(), procpool::WorkerCrashed);
  int child = 0;
  std::ifstream("/tmp/procpool-careless-child") >> child;
  std::remove("/tmp/procpool-careless-child");
  REQUIRE(child > 0);
  CHECK(gone(child));
  CHECK(pool.submit(tasks::add, 2, 3).get() == 5);  // the replacement serves
}

TEST_CASE("CarelessTasks.ChildrenATaskStartedDieWhenTheHostIsKilled" * doctest::timeout(60)) {
  // A host that runs a pool, killed with SIGKILL: its workers die (their
  // parent-death signal), and so do the processes their tasks started,
  // with fork() or with posix_spawn (as system() and popen() do). The
  // pool's sweeper is made by the zygote, or forked by a host that has none.
  Subreaper subreaper;
  bool with_zygote = true;
  SUBCASE("a host that called procpool::init") {}
  SUBCASE("a host that did not") { with_zygote = false; }
  auto host = census::fork_host(
      2,
      [with_zygote] {
        auto method = with_zygote ? census::inheriting_start_method() : procpool::StartMethod::fork;
        auto* pool =
            new procpool::ProcessPool({.workers = 2, .start_method = method});  // alive until the host is killed
        return std::vector<pid_t>{pool->submit(start_child, std::string("fork")).get(),
                                  pool->submit(start_child, std::string("spawn")).get()};
      },
      with_zygote);
  REQUIRE(host.reported.size() == 2);
  CHECK(host.sweepers.size() == 1);  // one per pool
  for (pid_t child : host.reported) {
    REQUIRE(child > 0);
    CHECK(census::process_exists(child));
  }
  ::kill(host.pid, SIGKILL);
  waitpid(host.pid, nullptr, 0);
  CHECK(gone(host.reported[0]));
  CHECK(gone(host.reported[1]));
  CHECK(census::eventually([&] { return census::orphans_gone(host.sweepers); }));
}

TEST_CASE("CarelessTasks.ChildrenATaskStartedDieWhenTheHostExitsWithThePoolAlive" * doctest::timeout(60)) {
  // exit() with a pool never shut down (leaked, or a static a program
  // leaves for the system to clean).
  Subreaper subreaper;
  auto host = census::fork_host(1, [] {
    // SIGUSR1 from the test makes a thread of the host call exit().
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, nullptr);    // in every thread the host starts from here
    static procpool::ProcessPool* pool = nullptr;  // reachable: a leak checker at exit() finds no leak
    pool = new procpool::ProcessPool({.workers = 1});
    pid_t child = pool->submit(start_child, std::string("spawn")).get();
    std::thread([usr1] {
      int sig = 0;
      sigwait(&usr1, &sig);
      std::exit(0);
    }).detach();
    return std::vector<pid_t>{child};
  });
  REQUIRE(host.reported.size() == 1);
  REQUIRE(host.reported[0] > 0);
  ::kill(host.pid, SIGUSR1);
  int status = 0;
  waitpid(host.pid, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(gone(host.reported[0]));
  CHECK(census::eventually([&] { return census::orphans_gone(host.sweepers); }));
}

TEST_CASE("CarelessTasks.ChildrenATaskStartedDieWhenCtrlCEndsTheHost" * doctest::timeout(60)) {
  // SIGINT to the host's whole process group, as a terminal's Ctrl-C
  // sends it: the host dies of it; the workers, which ignore it, die with
  // the host; what their tasks started dies with them.
  // Without a zygote, the sweeper is the host's fork, in the host's group
  // until it takes one of its own.
  Subreaper subreaper;
  bool with_zygote = true;
  SUBCASE("a host that called procpool::init") {}
  SUBCASE("a host that did not") { with_zygote = false; }
  auto host = census::fork_host(
      1,
      [with_zygote] {
        ::setpgid(0, 0);            // a foreground job of its own
        ::signal(SIGINT, SIG_DFL);  // a program that does not handle Ctrl-C
        auto method = with_zygote ? census::inheriting_start_method() : procpool::StartMethod::fork;
        auto* pool = new procpool::ProcessPool({.workers = 1, .start_method = method});
        return std::vector<pid_t>{pool->submit(start_child, std::string("spawn")).get()};
      },
      with_zygote);
  REQUIRE(host.reported.size() == 1);
  REQUIRE(host.reported[0] > 0);
  ::kill(-host.pid, SIGINT);
  int status = 0;
  waitpid(host.pid, &status, 0);
  CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGINT));
  CHECK(gone(host.reported[0]));
  CHECK(census::eventually([&] { return census::orphans_gone(host.sweepers); }));
}

TEST_CASE("CarelessTasks.ExitInATaskRunsNoneOfTheHostsExitHandlers" * doctest::timeout(60)) {
  char path[] = "/tmp/procpool-exit-marker-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  static bool registered = false;
  if (!registered) std::atexit(mark_exit_handler_run);  // before the pool, as a program's would be
  registered = true;
  g_exit_marker = path;
  {
    procpool::ProcessPool pool({.workers = 1});
    try {
      pool.submit(exit_with, 3).get();
      FAIL("expected WorkerCrashed");
    } catch (const procpool::WorkerCrashed& e) {
      CHECK(e.exit_code() == 3);
    }
    CHECK(pool.submit(tasks::add, 1, 1).get() == 2);
  }
  g_exit_marker = nullptr;
  std::ifstream marker(path);
  std::string line;
  CHECK_FALSE(std::getline(marker, line));  // the handler never ran in the worker
  std::remove(path);
}
