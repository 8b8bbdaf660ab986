// SPDX-License-Identifier: MIT
// The sandbox (PoolOptions::sandbox): under compute_only a forbidden
// syscall kills the worker and fails its call with SandboxViolation naming
// the syscall, the next call runs on a fresh worker; errno mode returns
// the error and the task goes on; procpool's own traffic (echo, 64 MiB,
// SharedBytes, map, usage, max_worker_memory, crash reports) keeps working;
// read_only_files reads beneath its paths only; a bad profile is refused
// when the pool is made.
#include <doctest/doctest.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "support/census.hpp"
#include "support/task_functions.hpp"

namespace {
using namespace std::chrono_literals;
using procpool::Sandbox;

// Makes the syscall named by `what`; returns 0 if it succeeded, else errno.
// Harmless when the sandbox is off (for the mutation checks): ptrace peeks
// at a process it does not trace, fork's child exits at once.
int attempt(std::string what) {
  errno = 0;
  if (what == "ptrace") return ::ptrace(PTRACE_PEEKDATA, ::getpid(), nullptr, nullptr) == -1 ? errno : 0;
  if (what == "socket") {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return errno;
    ::close(fd);
    return 0;
  }
  if (what == "open") {
    int fd = ::open("/etc/passwd", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    ::close(fd);
    return 0;
  }
  if (what == "execve") {
    // Through a pointer: in a --coverage build (PROCPOOL_COVERAGE) GCC
    // turns a direct call into libgcov's wrapper, which writes the profile
    // (an openat, refused) before it execs.
    int (*volatile execl)(const char*, const char*, ...) = ::execl;
    execl("/bin/sh", "sh", "-c", "exit 7", static_cast<char*>(nullptr));
    return errno;
  }
  if (what == "fork") {
    pid_t pid = ::fork();
    if (pid < 0) return errno;
    if (pid == 0) ::_exit(0);
    ::waitpid(pid, nullptr, 0);
    return 0;
  }
  // A worker moves itself off the host's CPU (worker/step_aside.hpp): its
  // own set of CPUs, named as 0, is its to set; named by its pid, refused.
  if (what == "own_cpus" || what == "own_cpus_by_pid") {
    cpu_set_t own;
    if (::sched_getaffinity(0, sizeof own, &own) != 0) return errno;
    return ::sched_setaffinity(what == "own_cpus" ? 0 : ::getpid(), sizeof own, &own) == 0 ? 0 : errno;
  }
  if (what == "ignore_sigsys") return ::signal(SIGSYS, SIG_IGN) == SIG_ERR ? errno : 0;
  if (what == "query_sigsys") {
    struct sigaction current {};
    return ::sigaction(SIGSYS, nullptr, &current) != 0 ? errno : (current.sa_flags & SA_SIGINFO) ? 0 : -2;
  }
  if (what == "block_sigsys_then_ptrace") {
    sigset_t sys;
    sigemptyset(&sys);
    sigaddset(&sys, SIGSYS);
    ::sigprocmask(SIG_BLOCK, &sys, nullptr);
    return attempt("ptrace");
  }
  return -1;
}
PROCPOOL_REGISTER(attempt);

// The file's text, or "errno <name>" when it cannot be read.
std::string read_text(std::string path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::string("errno ") + strerrorname_np(errno);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return text;
}
PROCPOOL_REGISTER(read_text);

// 0, or errno of opening `path` to write.
int write_text(std::string path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return errno;
  ::close(fd);
  return 0;
}
PROCPOOL_REGISTER(write_text);

// Sums 1..n on `threads` std::threads (clone3 refused with ENOSYS, glibc
// falls back to clone with CLONE_THREAD).
long sum_on_threads(int threads, int n) {
  std::vector<long> parts(static_cast<size_t>(threads));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int i = t + 1; i <= n; i += threads) parts[static_cast<size_t>(t)] += i;
    });
  for (auto& th : pool) th.join();
  return std::accumulate(parts.begin(), parts.end(), 0L);
}
PROCPOOL_REGISTER(sum_on_threads);

std::vector<std::string> environment_of_worker() {
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) out.emplace_back(*e);
  return out;
}
PROCPOOL_REGISTER(environment_of_worker);

procpool::SharedBytes fill_shared(size_t n, char c) {
  return procpool::SharedBytes::make(n, [&](std::span<std::byte> out) { std::memset(out.data(), c, out.size()); });
}
PROCPOOL_REGISTER(fill_shared);
long sum_shared(procpool::SharedBytes b) {
  long s = 0;
  for (std::byte x : b.bytes()) s += static_cast<long>(x);
  return s;
}
PROCPOOL_REGISTER(sum_shared);

std::vector<char*> g_kept;
int touch_mib(int mib) {
  auto* block = new char[static_cast<size_t>(mib) << 20];
  std::memset(block, 1, static_cast<size_t>(mib) << 20);
  g_kept.push_back(block);
  return static_cast<int>(::getpid());
}
PROCPOOL_REGISTER(touch_mib);

std::string g_loaded;
void load_at_start(std::string path) { g_loaded = read_text(path); }
PROCPOOL_REGISTER(load_at_start);
std::string loaded() { return g_loaded; }
PROCPOOL_REGISTER(loaded);

std::string proc_line(pid_t pid, const std::string& key) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.starts_with(key + ":")) return line.substr(key.size() + 1);
  return "";
}

// Calls `what` and expects SandboxViolation naming `syscall`; then a call
// runs on a fresh worker.
void expect_violation(procpool::ProcessPool& pool, const std::string& what, const std::string& syscall) {
  CAPTURE(what);
  pid_t before = pool.worker_pids().at(0);
  auto f = pool.submit(attempt, what);
  try {
    f.get();
    FAIL("the call returned instead of failing with SandboxViolation");
  } catch (const procpool::SandboxViolation& e) {
    CHECK(e.syscall() == syscall);
    CHECK(e.function() == "attempt");
    CHECK(e.pid() == before);
    CHECK(e.signal() == SIGSYS);
    CHECK(std::string(e.what()).find(syscall) != std::string::npos);
  }
  CHECK(pool.submit(tasks::add, 2, 3).get() == 5);
  CHECK(pool.worker_pids().at(0) != before);
}

procpool::PoolOptions compute_only_pool() { return {.workers = 1, .sandbox = Sandbox::compute_only()}; }

}  // namespace

TEST_CASE("Sandbox.PtraceUnderComputeOnlyFailsWithSandboxViolationNamingIt" * doctest::timeout(60)) {
  procpool::ProcessPool pool(compute_only_pool());
  expect_violation(pool, "ptrace", "ptrace");
}

TEST_CASE("Sandbox.ExecSocketOpenAndForkUnderComputeOnlyEachFailWithSandboxViolationNamingTheSyscall" *
          doctest::timeout(60)) {
  census::Snapshot before;
  {
    procpool::ProcessPool pool(compute_only_pool());
    expect_violation(pool, "execve", "execve");
    expect_violation(pool, "socket", "socket");
    expect_violation(pool, "open", "openat");
    expect_violation(pool, "fork", "clone");
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Sandbox.AWorkerMaySetItsOwnCpusUnderComputeOnlyOnlyAsItself" * doctest::timeout(60)) {
  procpool::ProcessPool pool(compute_only_pool());
  CHECK(pool.submit(attempt, "own_cpus").get() == 0);
  expect_violation(pool, "own_cpus_by_pid", "sched_setaffinity");
}

TEST_CASE("Sandbox.AViolationIsAWorkerCrashWithItsBacktrace" * doctest::timeout(60)) {
  procpool::ProcessPool pool(compute_only_pool());
  auto f = pool.submit(attempt, std::string("socket"));
  try {
    f.get();
    FAIL("no violation");
  } catch (const procpool::WorkerCrashed& e) {
    CHECK(dynamic_cast<const procpool::SandboxViolation*>(&e) != nullptr);
    // attempt() is file-local (no dynamic symbol): the frame that called it.
    CHECK(e.backtrace().find("invoke_registered") != std::string::npos);
  }
}

TEST_CASE("Sandbox.SigsysCannotBeIgnoredAndABlockedOneStillKillsReportedAsUnknown" * doctest::timeout(60)) {
  procpool::ProcessPool pool(compute_only_pool());
  CHECK(pool.submit(attempt, std::string("query_sigsys")).get() == 0);  // asking is no change
#if !defined(__SANITIZE_THREAD__)
  // TSan's own sigaction keeps a disposition to itself without calling
  // rt_sigaction, so under it the change never reaches the filter.
  expect_violation(pool, "ignore_sigsys", "rt_sigaction");
#endif
  auto f = pool.submit(attempt, std::string("block_sigsys_then_ptrace"));
  try {
    f.get();
    FAIL("no violation");
  } catch (const procpool::SandboxViolation& e) {
    CHECK(e.syscall() == "");
    CHECK(e.syscall_number() == -1);
    CHECK(std::string(e.what()).find("could not record") != std::string::npos);
  }
  CHECK(pool.submit(tasks::add, 1, 1).get() == 2);
}

TEST_CASE("Sandbox.ErrnoModeReturnsEpermAndTheTaskGoesOn" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1, .sandbox = Sandbox::compute_only(Sandbox::Action::errno_(EPERM))});
  pid_t worker = pool.worker_pids().at(0);
  for (const char* what : {"ptrace", "socket", "open", "fork", "execve"}) {
    CAPTURE(what);
    CHECK(pool.submit(attempt, std::string(what)).get() == EPERM);
  }
  CHECK(pool.worker_pids().at(0) == worker);
}

TEST_CASE("Sandbox.ACustomProfileAllowsAndDeniesEachSyscallWithItsOwnAction" * doctest::timeout(60)) {
  Sandbox custom = Sandbox::compute_only()
                       .allow("socket")
                       .deny("ptrace", Sandbox::Action::errno_(EACCES))
                       .deny("clock_nanosleep", Sandbox::Action::kill);
  procpool::ProcessPool pool({.workers = 1, .sandbox = custom});
  CHECK(pool.submit(attempt, std::string("socket")).get() == 0);
  CHECK(pool.submit(attempt, std::string("ptrace")).get() == EACCES);
  CHECK_THROWS_WITH_AS(pool.submit(tasks::sleep_ms, 1).get(), doctest::Contains("clock_nanosleep"),
                       procpool::SandboxViolation);
  CHECK(pool.submit(tasks::add, 1, 2).get() == 3);
}

TEST_CASE("Sandbox.AnErrnoOutsideOneTo4095IsRefusedWhenThePoolIsMade" * doctest::timeout(60)) {
  census::Snapshot before;
  CHECK_THROWS_WITH_AS(
      procpool::ProcessPool(
          {.workers = 1, .sandbox = Sandbox::compute_only().deny("socket", Sandbox::Action::errno_(0))}),
      doctest::Contains("Sandbox::deny(\"socket\") with errno 0, which is not an errno value (1 to 4095)"),
      procpool::Error);
  CHECK_THROWS_WITH_AS(
      procpool::ProcessPool({.workers = 1, .sandbox = Sandbox::compute_only(Sandbox::Action::errno_(4096))}),
      doctest::Contains("the profile's errno 4096 is not an errno value (1 to 4095)"), procpool::Error);
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Sandbox.AnUnknownSyscallNameIsRefusedWhenThePoolIsMade" * doctest::timeout(60)) {
  census::Snapshot before;
  CHECK_THROWS_WITH_AS(procpool::ProcessPool({.workers = 1, .sandbox = Sandbox::compute_only().allow("no_such_call")}),
                       doctest::Contains("'no_such_call' in Sandbox::allow is not a system call libseccomp knows"),
                       procpool::Error);
  // i386's multiplexer: libseccomp knows it, x86_64 has no such syscall.
  CHECK_THROWS_WITH_AS(procpool::ProcessPool({.workers = 1, .sandbox = Sandbox::compute_only().allow("socketcall")}),
                       doctest::Contains("'socketcall' in Sandbox::allow is not a system call of this architecture"),
                       procpool::Error);
  CHECK_THROWS_WITH_AS(procpool::ProcessPool({.workers = 1, .sandbox = Sandbox::compute_only().deny("sokcet")}),
                       doctest::Contains("'sokcet' in Sandbox::deny"), procpool::Error);
  CHECK_THROWS_WITH_AS(procpool::ProcessPool({.workers = 1, .sandbox = Sandbox::read_only_files({"relative/dir"})}),
                       doctest::Contains("not absolute"), procpool::Error);
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Sandbox.EchoLargePayloadsSharedBytesMapAndThreadsWorkUnderComputeOnly" * doctest::timeout(120)) {
  procpool::ProcessPool pool({.workers = 2, .sandbox = Sandbox::compute_only()});
  CHECK(pool.submit(tasks::echo, std::string("hello")).get() == "hello");
  std::vector<unsigned char> big(size_t{64} << 20);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<unsigned char>(i * 7);
  CHECK(pool.submit(tasks::echo_bytes, big).get() == big);
  CHECK(pool.submit(sum_shared, fill_shared(1 << 20, 2)).get() == 2L << 20);
  procpool::SharedBytes made = pool.submit(fill_shared, size_t{3} << 20, char(1)).get();
  CHECK(made.size() == size_t{3} << 20);
  CHECK(pool.submit(sum_shared, made).get() == 3L << 20);
  std::vector<int> in(1000);
  std::iota(in.begin(), in.end(), 0);
  CHECK(pool.map(tasks::identity, in, 37).get() == in);
#if !defined(__SANITIZE_THREAD__)
  // TSan refuses to start threads in a process forked from a multi-threaded
  // one (die_after_fork): a worker's own threads cannot run under it.
  CHECK(pool.submit(sum_on_threads, 4, 1000).get() == 500500);
#endif
  CHECK(pool.stats().worker_deaths == 0);
}

TEST_CASE("Sandbox.CrashesAreStillReportedWithTheirBacktraceUnderComputeOnly" * doctest::timeout(60)) {
  procpool::ProcessPool pool(compute_only_pool());
  struct Crash {
    const char* how;
    int sig;
    const char* frame;  // one the backtrace must show
  };
  for (auto [how, sig, frame] : {Crash{"segv", SIGSEGV, "tasks::crash"}, Crash{"abort", SIGABRT, "abort"}}) {
    CAPTURE(how);
    try {
      pool.call<int>("crash", std::string(how)).get();
      FAIL("no crash");
    } catch (const procpool::SandboxViolation&) {
      FAIL("a crash reported as a violation");
    } catch (const procpool::WorkerCrashed& e) {
      CHECK(e.signal() == sig);
      CHECK(e.backtrace().find(frame) != std::string::npos);
    }
  }
  CHECK(pool.submit(tasks::add, 1, 2).get() == 3);
}

TEST_CASE("Sandbox.MeasureUsageAndMaxWorkerMemoryStillWorkUnderComputeOnly" * doctest::timeout(60)) {
  // Relative to what an idle worker holds (a sanitizer's shadow memory
  // makes it large), read from an unsandboxed worker. Forkserver workers:
  // a forked one's resident set starts with the host's pages it shares,
  // which grow as the suite runs (under ASan, by tens of MiB between two
  // forks), and the comparisons below are between two workers.
  auto method = procpool::StartMethod::forkserver;
  procpool::ProcessPool probe({.workers = 1, .start_method = method});
  size_t idle = static_cast<size_t>(probe.submit(tasks::resident_bytes).get());
  probe.shutdown(true);
  procpool::ProcessPool pool({.workers = 1,
                              .start_method = method,
                              .max_worker_memory = idle + (size_t{32} << 20),
                              .sandbox = Sandbox::compute_only()});
  pid_t first = pool.worker_pids().at(0);
  auto heavy = pool.submit_with({.measure_usage = true}, touch_mib, 64);
  CHECK(heavy.get() == first);
  REQUIRE(heavy.usage().has_value());
  CHECK(heavy.usage()->peak_rss_bytes >= (uint64_t{64} << 20));
  // Over max_worker_memory: retired and replaced, not killed.
  CHECK(census::eventually([&] { return pool.stats().retired_over_memory == 1; }));
  auto light = pool.submit_with({.measure_usage = true}, touch_mib, 0);
  pid_t second = light.get();
  CHECK(second != first);
  REQUIRE(light.usage().has_value());
  CHECK(light.usage()->peak_rss_bytes + (uint64_t{48} << 20) < heavy.usage()->peak_rss_bytes);
  // The same worker again: its peak is reset per call through the kept fd.
  auto again = pool.submit_with({.measure_usage = true}, touch_mib, 0);
  CHECK(again.get() == second);
  REQUIRE(again.usage().has_value());
  CHECK(again.usage()->peak_rss_bytes + (uint64_t{48} << 20) < heavy.usage()->peak_rss_bytes);
}

TEST_CASE("Sandbox.AWorkerHoldsOnlyFds0To2AndThePoolsOwn" * doctest::timeout(60)) {
  procpool::ProcessPool pool(compute_only_pool());
  for (int round = 0; round < 2; ++round) {  // before and after a respawn
    pid_t pid = pool.submit(tasks::pid_of_worker).get();
    std::string dir = "/proc/" + std::to_string(pid) + "/fd";
    std::vector<std::string> others;
    for (auto& entry : std::filesystem::directory_iterator(dir)) {
      int fd = std::stoi(entry.path().filename().string());
      if (fd <= 2) continue;
      std::string target = std::filesystem::read_symlink(entry.path()).string();
      bool own = target == "anon_inode:[eventfd]" || target.starts_with("socket:[") ||
                 target == "/proc/" + std::to_string(pid) + "/clear_refs" ||
                 target == "/proc/" + std::to_string(pid) + "/status";  // measure_usage's, opened before the filter
      if (!own) others.push_back(std::to_string(fd) + " -> " + target);
    }
    CHECK(others == std::vector<std::string>{});
    if (round == 0) CHECK_THROWS_AS(pool.submit(attempt, std::string("socket")).get(), procpool::SandboxViolation);
  }
}

TEST_CASE("Sandbox.AWorkerHasNoNewPrivsAFilterTheRootDirectoryAndOnlyTheGivenEnvironment" * doctest::timeout(60)) {
  ::setenv("PROCPOOL_TEST_SECRET", "hunter2", 1);
  {
    procpool::ProcessPool pool({.workers = 1, .sandbox = Sandbox::compute_only().environment({"LANG=C"})});
    pid_t pid = pool.submit(tasks::pid_of_worker).get();
    CHECK(proc_line(pid, "NoNewPrivs") == "\t1");
    CHECK(proc_line(pid, "Seccomp") == "\t2");
    CHECK(std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/cwd") == "/");
    CHECK(pool.submit(environment_of_worker).get() == std::vector<std::string>{"LANG=C"});
  }
  procpool::ProcessPool scrubbed(compute_only_pool());
  CHECK(scrubbed.submit(environment_of_worker).get().empty());
  ::unsetenv("PROCPOOL_TEST_SECRET");
}

TEST_CASE("Sandbox.TheInitializerRunsBeforeTheFilterAndMayReadFiles" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1,
                              .initializer = procpool::initializer(load_at_start, std::string("/etc/passwd")),
                              .sandbox = Sandbox::compute_only()});
  CHECK(pool.submit(loaded).get().find("root:") != std::string::npos);
  expect_violation(pool, "open", "openat");
}

TEST_CASE("Sandbox.ReadOnlyFilesReadsBeneathItsPathsOnlyAndNeverWrites" * doctest::timeout(60)) {
  char dir_template[] = "/tmp/procpool-sandbox-XXXXXX";
  std::string dir = ::mkdtemp(dir_template);
  { std::ofstream(dir + "/data.txt") << "inside"; }
  {
    procpool::ProcessPool pool({.workers = 1, .sandbox = Sandbox::read_only_files({dir})});
    CHECK(pool.submit(read_text, dir + "/data.txt").get() == "inside");
    CHECK(pool.submit(read_text, std::string("/etc/passwd")).get() == "errno EACCES");
    CHECK(pool.submit(read_text, dir + "/../../etc/passwd").get() == "errno EACCES");
    CHECK_THROWS_WITH_AS(pool.submit(write_text, dir + "/new.txt").get(), doctest::Contains("openat"),
                         procpool::SandboxViolation);
  }
  {
    procpool::ProcessPool pool(
        {.workers = 1, .sandbox = Sandbox::read_only_files({dir}, Sandbox::Action::errno_(EPERM))});
    CHECK(pool.submit(write_text, dir + "/new.txt").get() == EPERM);
  }
  CHECK_FALSE(std::filesystem::exists(dir + "/new.txt"));
  std::filesystem::remove_all(dir);
}
