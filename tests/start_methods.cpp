// SPDX-License-Identifier: MIT
// What each start method leaves in a worker and behind it.
#include <doctest/doctest.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <procpool/procpool.hpp>
#include <procpool/worker/forkserver.hpp>

#include "support/census.hpp"
#include "support/task_functions.hpp"

namespace {

using Half = std::array<unsigned char, 16>;
constexpr procpool::StartMethod kMethods[] = {procpool::StartMethod::fork, procpool::StartMethod::forkserver,
                                              procpool::StartMethod::spawn};

// Whether this process's readable memory holds `a` followed by `b_masked`
// XOR `mask` anywhere. The secret is never whole in the arguments, nor
// here: the second half is compared byte by byte as it is unmasked.
bool memory_holds(Half a, Half b_masked, Half mask) {
  std::ifstream maps("/proc/self/maps");
  int mem = ::open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
  if (mem < 0) throw std::runtime_error("cannot open /proc/self/mem");
  std::vector<unsigned char> chunk(size_t{1} << 20);
  bool found = false;
  for (std::string line; !found && std::getline(maps, line);) {
    unsigned long lo = 0, hi = 0;
    char perms[5] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %4s", &lo, &hi, perms) != 3 || perms[0] != 'r') continue;
    if (line.find("[vvar]") != std::string::npos || line.find("[vsyscall]") != std::string::npos) continue;
    // Not a sanitizer's shadow (terabytes, mostly never touched): the
    // secret is in the heap, whose mappings are smaller.
    if (hi - lo > (1ul << 30)) continue;
    for (unsigned long at = lo; !found && at < hi; at += chunk.size() - 32) {
      size_t want = std::min<unsigned long>(chunk.size(), hi - at);
      ssize_t got = ::pread(mem, chunk.data(), want, static_cast<off_t>(at));
      if (got < 32) break;
      for (size_t i = 0; !found && i + 32 <= static_cast<size_t>(got); ++i) {
        if (chunk[i] != a[0] || std::memcmp(&chunk[i], a.data(), 16) != 0) continue;
        bool whole = true;
        for (size_t k = 0; whole && k < 16; ++k) whole = chunk[i + 16 + k] == (b_masked[k] ^ mask[k]);
        found = whole;
      }
      if (want < chunk.size()) break;
    }
  }
  ::close(mem);
  return found;
}
PROCPOOL_REGISTER(memory_holds);

// 32 random bytes in the heap, and what memory_holds needs to look for
// them without the arguments ever holding them whole: the first half, and
// the second masked (the mask is never 0 in a byte, so the masked half
// differs from the secret's in every byte).
struct HeapSecret {
  std::unique_ptr<unsigned char[]> bytes = std::make_unique<unsigned char[]>(32);
  HeapSecret() { REQUIRE(::getrandom(bytes.get(), 32, 0) == 32); }
  std::tuple<Half, Half, Half> clues() const {
    Half a, b_masked, mask;
    REQUIRE(::getrandom(mask.data(), mask.size(), 0) == 16);
    for (size_t k = 0; k < 16; ++k) {
      mask[k] |= 1;
      a[k] = bytes[k];
      b_masked[k] = bytes[16 + k] ^ mask[k];
    }
    return {a, b_masked, mask};
  }
};

// A logger's lock, as an application has: no fork handler resets it.
std::mutex g_log_mutex;
int log_a_line(int x) {
  std::lock_guard lock(g_log_mutex);
  std::printf("a line from the worker (%d)\n", x);
  std::fflush(stdout);
  return x;
}
PROCPOOL_REGISTER(log_a_line);

// The descriptors a worker holds (its /proc/<pid>/fd, from the host).
std::set<int> fds_of(pid_t pid) {
  std::set<int> out;
  if (DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str())) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') out.insert(std::atoi(e->d_name));
    ::closedir(d);
  }
  return out;
}

pid_t parent_of(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  auto close = line.rfind(')');
  std::istringstream rest(line.substr(close + 2));
  char state;
  pid_t ppid = 0;
  rest >> state >> ppid;
  return ppid;
}

}  // namespace

TEST_CASE("StartMethods.EachServesCallsWithWorkersThatAreTheHostsChildren" * doctest::timeout(60)) {
  for (auto method : kMethods) {
    std::string method_name = procpool::to_string(method);
    CAPTURE(method_name);
    census::Snapshot before;
    {
      procpool::ProcessPool pool({.workers = 2, .start_method = method});
      CHECK(pool.submit(tasks::add, 20, 22).get() == 42);
      for (pid_t w : pool.worker_pids()) CHECK(parent_of(w) == ::getpid());
      // A crash is reported with its backtrace, whatever the worker's layout.
      try {
        pool.submit(tasks::crash, "segv").get();
        FAIL("the crash was not reported");
      } catch (const procpool::WorkerCrashed& e) {
        CHECK(e.backtrace().find("tasks::crash") != std::string::npos);
      }
      CHECK(pool.submit(tasks::add, 1, 2).get() == 3);
    }
    CHECK(census::leaks_since(before) == "");
  }
}

TEST_CASE("StartMethods.ASecretInTheHostsHeapIsInAForkedWorkerOnly" * doctest::timeout(60)) {
  // Written into the heap after init() (as a key read from a file would
  // be), before the pools start.
  HeapSecret secret;
  auto [a, b_masked, mask] = secret.clues();
  for (auto method : kMethods) {
    std::string method_name = procpool::to_string(method);
    CAPTURE(method_name);
    procpool::ProcessPool pool({.workers = 1, .start_method = method});
    bool found = pool.submit(memory_holds, a, b_masked, mask).get();
    // fork copies the host's memory into the worker: documented, and the
    // reason the other two exist.
    CHECK(found == (method == procpool::StartMethod::fork));
  }
  CHECK(memory_holds(a, b_masked, mask));  // the scan finds it where it is
}

TEST_CASE("StartMethods.AWorkerHoldsOnlyStdioAndItsOwnTwoDescriptors" * doctest::timeout(60)) {
  for (auto method : kMethods) {
    std::string method_name = procpool::to_string(method);
    CAPTURE(method_name);
    procpool::ProcessPool pool({.workers = 1, .start_method = method});
    for (int round = 0; round < 2; ++round) {
      REQUIRE(pool.submit(tasks::add, 1, 1).get() == 2);  // it is set up
      for (pid_t w : pool.worker_pids()) {
        std::set<int> fds = fds_of(w);
        std::string links;
        for (int fd : fds) {
          char target[256] = {};
          (void)!::readlink(("/proc/" + std::to_string(w) + "/fd/" + std::to_string(fd)).c_str(), target, 255);
          links += std::to_string(fd) + "->" + target + " ";
        }
        CAPTURE(links);
        CHECK(fds.size() == 5);  // 0-2, the doorbell, the SharedBytes socket
        CHECK(fds.count(0) + fds.count(1) + fds.count(2) == 3);
      }
      // After a respawn too.
      CHECK_THROWS_AS(pool.submit(tasks::crash, "segv").get(), procpool::WorkerCrashed);
    }
  }
}

TEST_CASE("StartMethods.ALockAHostThreadHoldsBlocksOnlyForkedWorkers" * doctest::timeout(60)) {
  // Other threads hold a logger's mutex, and stdout's lock, while workers
  // start. A fork copies the mutex held, for ever (glibc resets stdio's
  // locks in a forked child, no one resets an application's); the
  // zygote's copy was taken before any thread ran. Nothing is reported
  // while stdout is held (doctest writes to it).
  std::atomic<int> held{0};
  std::atomic<bool> release{false};
  auto hold = [&](auto lock, auto unlock) {
    return std::thread([&, lock, unlock] {
      lock();
      ++held;
      while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      unlock();
    });
  };
  std::thread logger = hold([] { g_log_mutex.lock(); }, [] { g_log_mutex.unlock(); });
  std::thread printer = hold([] { flockfile(stdout); }, [] { funlockfile(stdout); });
  while (held < 2) std::this_thread::yield();
  std::vector<std::string> outcomes;
  for (auto method : kMethods) {
    procpool::ProcessPool pool(
        {.workers = 1, .start_method = method, .worker_output = procpool::WorkerOutput::discard});
    auto f = pool.submit_with(procpool::CallOptions{.timeout = std::chrono::milliseconds(1000)}, log_a_line, 7);
    try {
      outcomes.push_back(std::to_string(f.get()));
    } catch (const procpool::TaskTimeout&) {
      outcomes.push_back("timeout");
    } catch (const std::exception& e) {
      outcomes.push_back(e.what());
    }
  }
  release = true;
  logger.join();
  printer.join();
  CHECK(outcomes[0] == "timeout");
  CHECK(outcomes[1] == "7");
  CHECK(outcomes[2] == "7");
}

TEST_CASE("StartMethods.TheHostKilledLeavesNoWorkerNorZygoteBehind" * doctest::timeout(60)) {
  REQUIRE(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
  for (auto method : {procpool::StartMethod::forkserver, procpool::StartMethod::spawn}) {
    std::string method_name = procpool::to_string(method);
    CAPTURE(method_name);
    auto before = census::shm_names();
    census::ForkedHost host = census::fork_host(3, [method] {
      static procpool::ProcessPool* pool = new procpool::ProcessPool({.workers = 2, .start_method = method});
      auto pids = pool->worker_pids();
      pids.push_back(procpool::detail::zygote_pid());
      return pids;
    });
    REQUIRE(host.reported.size() == 3);
    for (pid_t p : host.reported) CHECK(census::process_exists(p));
    ::kill(host.pid, SIGKILL);
    ::waitpid(host.pid, nullptr, 0);
    CHECK(census::eventually([&] { return census::orphans_gone(host.processes()); }));
    // (Another program's names may come and go meanwhile: compared once settled.)
    CHECK(census::eventually([&] { return census::shm_names() == before; }));
  }
  prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST_CASE("StartMethods.WithoutInitOrWithFunctionsRegisteredAfterItThePoolIsRefused" * doctest::timeout(60)) {
  // In a child: it is a fork of a process that called init() (not itself),
  // and its registry may change without touching this process's.
  int failed = census::exit_code_in_child([&] {
    int code = 0;
    auto refused = [](procpool::StartMethod m, const char* words) {
      try {
        procpool::ProcessPool pool({.workers = 1, .start_method = m});
      } catch (const procpool::Error& e) {
        return std::string(e.what()).find(words) != std::string::npos;
      }
      return false;
    };
    if (!refused(procpool::StartMethod::forkserver, "call it here too")) code |= 1;
    if (!refused(procpool::StartMethod::spawn, "call it here too")) code |= 2;
    procpool::init(0, nullptr);
    procpool::register_function("late_add", &tasks::add);
    if (!refused(procpool::StartMethod::forkserver, "registered after procpool::init() ('late_add')")) code |= 4;
    if (!refused(procpool::StartMethod::spawn, "registered after procpool::init() ('late_add')")) code |= 8;
    try {
      procpool::ProcessPool pool({.workers = 1, .start_method = procpool::StartMethod::fork});
      if (pool.call<int>("late_add", 2, 3).get() != 5) code |= 16;
    } catch (...) {
      code |= 32;
    }
    return code;
  });
  CHECK(failed == 0);
}

TEST_CASE("StartMethods.ASandboxedPoolStartsByForkserverUnlessTold" * doctest::timeout(60)) {
  HeapSecret secret;
  auto [a, b_masked, mask] = secret.clues();
  // compute_only cannot open /proc/self/mem: allow the scan what it needs.
  auto box = procpool::Sandbox::compute_only().allow("openat").allow("pread64");
  if (!procpool::default_start_method()) {
    procpool::ProcessPool pool({.workers = 1, .sandbox = box});
    CHECK_FALSE(pool.submit(memory_holds, a, b_masked, mask).get());
  }
  procpool::ProcessPool told({.workers = 1, .start_method = procpool::StartMethod::fork, .sandbox = box});
  CHECK(told.submit(memory_holds, a, b_masked, mask).get());
}

TEST_CASE("StartMethods.SpawnRunsTheGivenWorkerProgramAndRefusesOneWithOtherFunctions" * doctest::timeout(60)) {
  char self[4096] = {};
  REQUIRE(::readlink("/proc/self/exe", self, sizeof self - 1) > 0);
  {
    procpool::ProcessPool pool({.workers = 1, .start_method = procpool::StartMethod::spawn, .worker_program = self});
    CHECK(pool.submit(tasks::add, 2, 3).get() == 5);
  }
  CHECK_THROWS_WITH_AS(
      procpool::ProcessPool(
          {.workers = 1, .start_method = procpool::StartMethod::spawn, .worker_program = "/nonexistent/worker"}),
      doctest::Contains("'/nonexistent/worker' cannot be executed"), procpool::Error);
  // Its functions are not these: its workers say so and never start.
  procpool::ProcessPool other({.workers = 1,
                               .start_method = procpool::StartMethod::spawn,
                               .worker_program = PROCPOOL_OTHER_WORKER,
                               .max_failed_starts = 1,
                               .spare_workers = 0});
  CHECK_THROWS_WITH_AS(other.submit(tasks::add, 2, 3).get(), doctest::Contains("registered functions differ"),
                       procpool::PoolBroken);
}

TEST_CASE("StartMethods.AForkserverPoolIsRefusedWithTheReasonOnceTheZygoteIsGone" * doctest::timeout(60)) {
  // In a child with a zygote of its own, which the test kills.
  int failed = census::exit_code_in_child([&] {
    procpool::init(0, nullptr);
    int code = 0;
    {
      procpool::ProcessPool before({.workers = 1, .start_method = procpool::StartMethod::forkserver});
      if (before.submit(tasks::add, 1, 1).get() != 2) code |= 1;
      ::kill(procpool::detail::zygote_pid(), SIGKILL);
      // Its workers are the host's children: they serve on.
      if (before.submit(tasks::add, 2, 2).get() != 4) code |= 2;
    }
    try {
      procpool::ProcessPool after({.workers = 1, .start_method = procpool::StartMethod::forkserver});
      code |= 4;
    } catch (const procpool::Error& e) {
      if (std::string(e.what()).find("the forkserver (pid") == std::string::npos) code |= 8;
    }
    return code;
  });
  CHECK(failed == 0);
}
