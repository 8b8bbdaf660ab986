// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <dirent.h>

#include <poll.h>
#include <pthread.h>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <atomic>
#include <fstream>
#include <optional>
#include <set>
#include <string>

#include "support/census.hpp"
#include "support/task_functions.hpp"

namespace {
size_t fds_of(pid_t pid) {
  size_t n = 0;
  if (DIR* d = opendir(("/proc/" + std::to_string(pid) + "/fd").c_str())) {
    while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
    closedir(d);
  }
  return n;
}
}  // namespace

TEST_CASE("Lifecycle.StartsTheRequestedWorkers" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 3});
  auto pids = pool.worker_pids();
  CHECK(pool.worker_count() == 3);
  REQUIRE(pids.size() == 3);
  for (pid_t p : pids) CHECK(census::process_exists(p));
  std::set<int> served;
  for (int i = 0; i < 60; ++i) served.insert(pool.submit(tasks::pid_of_worker).get());
  for (int p : served) CHECK(std::find(pids.begin(), pids.end(), p) != pids.end());
}

TEST_CASE("Lifecycle.WorkersInheritNoFdsButTheDoorbellAndTheirSharedBytesChannel" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  pool.submit(tasks::noop).get();                // the worker has finished its set-up
  CHECK(fds_of(pool.worker_pids().at(0)) <= 5);  // stdin, stdout, stderr, doorbell, channel
}

TEST_CASE("Lifecycle.WorkersIgnoreCtrlC" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  pid_t w = pool.worker_pids().at(0);
  ::kill(w, SIGINT);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(census::process_exists(w));
  CHECK(pool.submit(tasks::add, 2, 3).get() == 5);
}

TEST_CASE("Lifecycle.WorkersDieWithTheHost" * doctest::timeout(60)) {
  // Become the subreaper so the orphaned workers come to us and can be
  // reaped here; then kill a host that runs a pool.
  REQUIRE(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
  auto host = census::fork_host(2, [] {
    auto* pool = new procpool::ProcessPool({.workers = 2});  // alive until the host is killed
    return pool->worker_pids();
  });
  REQUIRE(host.reported.size() == 2);
  ::kill(host.pid, SIGKILL);
  waitpid(host.pid, nullptr, 0);
  CHECK(census::eventually([&] { return census::orphans_gone(host.processes()); }));
  prctl(PR_SET_CHILD_SUBREAPER, 0);
}

namespace {
// The kinds of what a process's descriptors name ("socket", "pipe",
// "anon_inode", "/dev/pts/0"...).
std::multiset<std::string> descriptor_kinds(pid_t pid) {
  std::multiset<std::string> kinds;
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      char target[256] = {};
      (void)!::readlink((dir + "/" + e->d_name).c_str(), target, sizeof target - 1);
      kinds.insert(std::string(target).substr(0, std::string(target).find(':')));
    }
    closedir(d);
  }
  return kinds;
}

// A pool's sweeper holds its socket and its pidfd for the host, nothing
// else: closing the write end of a pipe the host made before the pool, as
// careless as can be (no O_CLOEXEC), must reach the reader at once. 0 if
// so, else which check failed.
int sweeper_holds_nothing_of_the_hosts() {
  int ends[2];
  if (::pipe(ends) != 0) return 1;
  {
    procpool::ProcessPool pool({.workers = 1, .start_method = procpool::StartMethod::fork});
    if (pool.submit(tasks::add, 1, 2).get() != 3) return 2;
    auto sweepers = census::sweepers(1);
    if (sweepers.size() != 1) return 3;
    if (descriptor_kinds(sweepers[0]) != std::multiset<std::string>{"anon_inode", "socket"}) return 4;
    ::close(ends[1]);
    pollfd p{ends[0], POLLIN, 0};
    char c;
    if (::poll(&p, 1, 2000) != 1 || ::read(ends[0], &c, 1) != 0) return 5;  // no process holds the write end
  }
  ::close(ends[0]);
  return census::sweepers().empty() ? 0 : 6;  // reaped with the pool
}

// The state letter of /proc/<pid>/stat ('T' stopped, 'Z' zombie), or 0.
char process_state(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line) || line.rfind(')') == std::string::npos) return 0;
  return line[line.rfind(')') + 2];
}
}  // namespace

TEST_CASE("Lifecycle.ThePoolsSweeperHoldsNoneOfTheHostsDescriptorsAndGoesWithThePool" * doctest::timeout(60)) {
  // Cloned by the zygote here; forked by the host in a child of this
  // process, which has no zygote of its own.
  CHECK(sweeper_holds_nothing_of_the_hosts() == 0);
  CHECK(census::exit_code_in_child([] { return sweeper_holds_nothing_of_the_hosts(); }) == 0);
}

TEST_CASE("Lifecycle.ASweeperKilledFromOutsideCostsTheHostNothing" * doctest::timeout(60)) {
  census::Snapshot before;
  {
    procpool::ProcessPool pool({.workers = 1, .max_tasks_per_child = 1});
    CHECK(pool.submit(tasks::add, 1, 2).get() == 3);
    auto sweepers = census::sweepers(1);
    REQUIRE(sweepers.size() == 1);
    ::kill(sweepers[0], SIGKILL);
    REQUIRE(census::eventually([&] { return process_state(sweepers[0]) == 'Z'; }));
    // Each call retires its worker: the pool tells the dead sweeper to
    // forget it, and to watch the next (no SIGPIPE for the host).
    for (int i = 0; i < 5; ++i) CHECK(pool.submit(tasks::add, i, 1).get() == i + 1);
  }
  CHECK(census::leaks_since(before) == "");  // the dead sweeper reaped with the pool
}

TEST_CASE("Lifecycle.ASweeperStoppedFromOutsideEndsOnceItMissesAForget" * doctest::timeout(90)) {
  // A stopped sweeper reads nothing; once its socket is full, a forget is
  // lost, and a sweeper that missed one might later kill a group whose id
  // was given to someone else: it is ended instead, sweeping nothing.
  census::Snapshot before;
  {
    procpool::ProcessPool pool({.workers = 1, .max_tasks_per_child = 1});
    CHECK(pool.submit(tasks::add, 1, 2).get() == 3);
    auto sweepers = census::sweepers(1);
    REQUIRE(sweepers.size() == 1);
    ::kill(sweepers[0], SIGSTOP);
    REQUIRE(census::eventually([&] { return process_state(sweepers[0]) == 'T'; }));
    int calls = 0;
    while (process_state(sweepers[0]) == 'T' && calls < 2000) {
      REQUIRE(pool.submit(tasks::add, calls, 1).get() == calls + 1);  // each retires a worker
      ++calls;
    }
    CHECK(census::eventually([&] { return process_state(sweepers[0]) == 'Z'; }));
    MESSAGE("the stopped sweeper ended after " << calls << " workers were replaced");
    CHECK(pool.submit(tasks::add, 2, 2).get() == 4);
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Lifecycle.ZeroWorkersMeansOnePerCpu" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 0});
  CHECK(pool.worker_count() == std::max(1u, std::thread::hardware_concurrency()));
}

namespace {
// The shared-memory mappings of a process that are workers' segments:
// /dev/zero (deleted), the anonymous shared memory of Boost.Interprocess,
// under StartMethod::fork; memfd:procpool-segment under the others.
size_t shared_zero_mappings(pid_t pid) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  size_t n = 0;
  for (std::string line; std::getline(maps, line);)
    n += line.find(" rw-s ") != std::string::npos &&
         (line.find("/dev/zero") != std::string::npos || line.find("memfd:procpool-segment") != std::string::npos);
  return n;
}
}  // namespace

TEST_CASE("Lifecycle.AWorkerMapsOnlyItsOwnRings" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 3});
  for (int i = 0; i < 30; ++i) pool.submit(tasks::noop).get();
  CHECK(shared_zero_mappings(getpid()) >= 3);
  for (pid_t w : pool.worker_pids()) {
    CAPTURE(w);
    // Once it has set itself up (a spawned worker maps its segment then).
    CHECK(census::eventually([&] { return shared_zero_mappings(w) == 1; }));
  }
}

namespace {
// Stands for a lock another host thread held when a worker was forked: a
// child forked while it is set blocks for ever before it is ready.
std::atomic<bool> g_block_new_workers{false};
void block_if_asked() {
  if (g_block_new_workers.load())
    for (;;) pause();
}
void install_blocker() {
  static bool installed = false;
  if (!installed) pthread_atfork(nullptr, nullptr, block_if_asked);
  installed = true;
}
}  // namespace

TEST_CASE("Lifecycle.AWorkerThatNeverBecomesReadyIsReplacedAndItsCallsServed" * doctest::timeout(60)) {
  install_blocker();
  census::Snapshot before;
  {
    g_block_new_workers = true;
    // The stuck worker's deadline runs from its fork, inside the pool's
    // constructor (which a loaded machine can make last most of it).
    auto t0 = std::chrono::steady_clock::now();
    // The blocker is a fork handler of this process: only its forks run it.
    procpool::ProcessPool pool(
        {.workers = 1, .start_method = procpool::StartMethod::fork, .start_timeout = std::chrono::milliseconds(200)});
    g_block_new_workers = false;  // its replacement starts normally
    pid_t stuck = pool.worker_pids().at(0);
    auto f = pool.submit(tasks::add, 20, 22);
    REQUIRE(f.wait_for(std::chrono::seconds(10)));
    CHECK(f.get() == 42);
    CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(200));
    CHECK(pool.worker_pids().at(0) != stuck);
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Lifecycle.WorkersThatNeverBecomeReadyThreeTimesStopThePoolWithTheReason" * doctest::timeout(60)) {
  install_blocker();
  g_block_new_workers = true;
  struct Unblock {
    ~Unblock() { g_block_new_workers = false; }
  } unblock;
  procpool::ProcessPool pool(
      {.workers = 1, .start_method = procpool::StartMethod::fork, .start_timeout = std::chrono::milliseconds(100)});
  auto f = pool.submit(tasks::add, 1, 2);
  REQUIRE(f.wait_for(std::chrono::seconds(10)));
  CHECK_THROWS_WITH_AS(f.get(), doctest::Contains("did not say it was ready within 100 ms"), procpool::Error);
  CHECK_THROWS_WITH_AS(pool.submit(tasks::add, 1, 2).get(), doctest::Contains("start_timeout"), procpool::Error);
}

TEST_CASE("Lifecycle.PoolsBuiltFromManyThreadsAtOnceAllServe" * doctest::timeout(90)) {
  // Each fork may be taken while another thread holds the allocator's or
  // the loader's lock: a worker that would block for ever on it is replaced
  // after its start-up deadline, and every call is served. Forked workers
  // whatever the suite's start method: the others take no fork of the host
  // with its locks, and a spawned worker under a sanitizer, 16 starting at
  // once on a loaded machine, can take longer than the short deadline.
  census::Snapshot before;
  std::atomic<int> served{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      procpool::ProcessPool pool({.workers = 2,
                                  .start_method = procpool::StartMethod::fork,
                                  .start_timeout = std::chrono::milliseconds(1000)});
      for (int i = 0; i < 20; ++i)
        if (pool.submit(tasks::add, t, i).get() == t + i) ++served;
    });
  for (auto& th : threads) th.join();
  CHECK(served.load() == 8 * 20);
  CHECK(census::leaks_since(before) == "");
}

// Options that cannot mean anything are refused with a procpool::Error that
// names them, before any worker or thread starts; and a ring the kernel will
// not map is a procpool::Error too, whatever the start method.
TEST_CASE("Lifecycle.OptionsThatCannotMeanAnythingAreRefusedWithAnErrorNamingThem" * doctest::timeout(60)) {
  using namespace std::chrono_literals;
  census::Snapshot before;
  auto refused_naming = [](procpool::PoolOptions options, const std::string& name) {
    try {
      procpool::ProcessPool pool(std::move(options));
    } catch (const procpool::Error& e) {
      return std::string(e.what()).find(name) != std::string::npos;
    }
    return false;
  };
  CHECK(refused_naming({.workers = 1, .ring_bytes = size_t{1} << 40}, "PoolOptions::ring_bytes is 1099511627776"));
  CHECK(refused_naming({.workers = 1, .start_timeout = 0ms}, "PoolOptions::start_timeout is 0 ms"));
  CHECK(refused_naming({.workers = 1, .start_timeout = -5ms}, "PoolOptions::start_timeout is -5 ms"));
  CHECK(refused_naming({.workers = 1, .prefetch_per_worker = 0}, "PoolOptions::prefetch_per_worker is 0"));
  // The largest ring is allowed; a tiny one is rounded up to a page.
  {
    procpool::ProcessPool tiny({.workers = 1, .ring_bytes = 1});
    CHECK(tiny.submit(tasks::echo, std::string(10000, 'x')).get().size() == 10000);  // streams through 4096 bytes
  }
  CHECK(census::leaks_since(before).empty());
}

namespace {
// Lowers this process's soft RLIMIT_NOFILE for a scope, whatever is thrown.
class LoweredDescriptorLimit {
 public:
  explicit LoweredDescriptorLimit(rlim_t soft) {
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved_) == 0);
    rlimit lowered = saved_;
    lowered.rlim_cur = soft;
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &lowered) == 0);
  }
  ~LoweredDescriptorLimit() { (void)::setrlimit(RLIMIT_NOFILE, &saved_); }
  LoweredDescriptorLimit(const LoweredDescriptorLimit&) = delete;
  LoweredDescriptorLimit& operator=(const LoweredDescriptorLimit&) = delete;

 private:
  rlimit saved_{};
};

std::optional<procpool::ResourceLimitExceeded> refusal(procpool::PoolOptions options) {
  try {
    procpool::ProcessPool pool(std::move(options));
  } catch (const procpool::ResourceLimitExceeded& e) {
    return e;
  }
  return std::nullopt;
}
}  // namespace

// A pool bigger than the host can hold is refused before its first fork,
// naming the limit: the descriptor limit (3 per worker: doorbell, pidfd,
// SharedBytes socket; 5 with captured output) and the kernel's pid range.
// Before, it failed at the worker that crossed the limit, thousands of
// forks later, with a plain Error from socketpair.
TEST_CASE("Lifecycle.APoolTooBigForTheHostsLimitsIsRefusedNamingTheLimit" * doctest::timeout(60)) {
  census::Snapshot before;
  const rlim_t soft = static_cast<rlim_t>(census::open_fds().size() + 48);
  std::optional<procpool::ResourceLimitExceeded> too_many, captured;
  std::optional<std::string> small_pool_result;
  {
    LoweredDescriptorLimit lowered(soft);
    too_many = refusal({.workers = 40});
    captured = refusal({.workers = 8, .worker_output = procpool::WorkerOutput::capture});
    procpool::ProcessPool fits({.workers = 4});  // 3 x 6, the sweeper's, the reactor's and a margin fit
    small_pool_result = fits.submit(tasks::echo, std::string("fits")).get();
  }
  REQUIRE(too_many.has_value());
  CHECK(too_many->limit() == "RLIMIT_NOFILE");
  CHECK(too_many->maximum() == soft);
  CHECK(too_many->value() > 3 * 42);
  CHECK(std::string(too_many->what()).find("a pool of 40 workers and 1 spare needs 3 descriptors per worker") !=
        std::string::npos);
  CHECK(std::string(too_many->what()).find("ulimit -n") != std::string::npos);
  REQUIRE(captured.has_value());  // 5 x 10 does not fit where 3 x 10 would
  CHECK(std::string(captured->what()).find("needs 5 descriptors per worker") != std::string::npos);
  CHECK(small_pool_result == "fits");

  size_t pid_max = 0;
  std::ifstream("/proc/sys/kernel/pid_max") >> pid_max;
  REQUIRE(pid_max > 0);
  auto beyond_pids = refusal({.workers = pid_max});
  REQUIRE(beyond_pids.has_value());
  CHECK(beyond_pids->limit() == "kernel.pid_max");
  CHECK(beyond_pids->maximum() == pid_max);
  CHECK(census::leaks_since(before).empty());
}
