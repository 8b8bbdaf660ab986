// SPDX-License-Identifier: MIT
// Workers' lives, resource limits: each PoolOptions::limits field is set in
// the workers; the memory, CPU and file size limits fail the call with
// ResourceLimitExceeded naming the limit, and the pool goes on (with the
// same worker after a bad_alloc, a replacement after a death).
#include <doctest/doctest.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "support/census.hpp"
#include "support/task_functions.hpp"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PROCPOOL_TEST_SANITIZER_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define PROCPOOL_TEST_SANITIZER_ALLOCATOR 1
#endif
#endif
#ifndef PROCPOOL_TEST_SANITIZER_ALLOCATOR
#define PROCPOOL_TEST_SANITIZER_ALLOCATOR 0
#endif

namespace {
using namespace std::chrono_literals;

// RLIMIT_AS and the sanitizers' allocators cannot meet: AddressSanitizer's
// shadow memory reserves terabytes of address space (a worker under an
// address-space limit cannot allocate at all), and ThreadSanitizer's
// allocator kills the process (exit code 66) instead of throwing
// std::bad_alloc. The memory limit's cases are skipped there.
constexpr bool kSanitizerAllocator = PROCPOOL_TEST_SANITIZER_ALLOCATOR;

long soft_limit(int resource) {
  rlimit r{};
  ::getrlimit(resource, &r);
  return r.rlim_cur == RLIM_INFINITY ? -1 : static_cast<long>(r.rlim_cur);
}
PROCPOOL_REGISTER(soft_limit);

// Opens /dev/null until refused (at most `most`); returns how many opened,
// negated if the refusal was not EMFILE.
int open_until_refused(int most) {
  std::vector<int> fds;
  int err = 0;
  for (int i = 0; i < most; ++i) {
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      err = errno;
      break;
    }
    fds.push_back(fd);
  }
  for (int fd : fds) ::close(fd);
  return err == EMFILE ? static_cast<int>(fds.size()) : -static_cast<int>(fds.size());
}
PROCPOOL_REGISTER(open_until_refused);

// Uses `ms` of CPU time, then returns the pid.
int spin_cpu_ms(int ms) {
  auto cpu_ms = [] {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000L + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1000;
  };
  long until = cpu_ms() + ms;
  while (cpu_ms() < until) asm volatile("");
  return static_cast<int>(getpid());
}
PROCPOOL_REGISTER(spin_cpu_ms);

int write_bytes(std::string path, long bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot open " + path);
  std::vector<char> block(1 << 16, 'x');
  for (long done = 0; done < bytes;) {
    ssize_t n = ::write(fd, block.data(), std::min<size_t>(block.size(), static_cast<size_t>(bytes - done)));
    if (n <= 0) break;
    done += n;
  }
  ::close(fd);
  return static_cast<int>(getpid());
}
PROCPOOL_REGISTER(write_bytes);

// Allocates and touches `mib` MiB, frees it; returns the pid.
int allocate_mib(long mib) {
  auto block = std::make_unique<char[]>(static_cast<size_t>(mib) << 20);
  for (size_t i = 0; i < (static_cast<size_t>(mib) << 20); i += 4096) block[i] = 1;
  return static_cast<int>(getpid()) + (block[0] == 2);
}
PROCPOOL_REGISTER(allocate_mib);

// An allocation failure where no exception may pass: std::terminate.
void allocate_without_escape(long mib) noexcept { (void)allocate_mib(mib); }
int die_allocating_mib(long mib) {
  allocate_without_escape(mib);
  return 0;
}
PROCPOOL_REGISTER(die_allocating_mib);

// The host's address space now: a worker starts with a copy of it.
uint64_t host_address_space() {
  long pages = 0;
  std::ifstream("/proc/self/statm") >> pages;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

// The ResourceLimitExceeded a call fails with (REQUIREs it, within 20 s).
template <class T>
procpool::ResourceLimitExceeded limit_error(procpool::Future<T>& f) {
  REQUIRE_MESSAGE(f.wait_for(20s), "the call did not settle within 20 s");
  try {
    f.get();
  } catch (const procpool::ResourceLimitExceeded& e) {
    return e;
  } catch (const std::exception& e) {
    FAIL("expected ResourceLimitExceeded, got " << std::string(e.what()));
  }
  FAIL("expected ResourceLimitExceeded, the call succeeded");
  return procpool::ResourceLimitExceeded("", 0, 0, "");
}

}  // namespace

TEST_CASE("ResourceLimits.CoreDumpsAreOffByDefault" * doctest::timeout(30)) {
  census::Snapshot before;
  {
    procpool::ProcessPool pool({.workers = 1});
    CHECK(pool.submit(soft_limit, int{RLIMIT_CORE}).get() == 0);
  }
  {
    procpool::ProcessPool pool({.workers = 1, .limits = {.core_dumps = 1 << 20}});
    CHECK(pool.submit(soft_limit, int{RLIMIT_CORE}).get() == 1 << 20);
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("ResourceLimits.OpenFilesAndProcessesAreSetInEachWorker" * doctest::timeout(30)) {
  census::Snapshot before;
  {
    // RLIMIT_NPROC is set but not enforced for root: only its value is checked.
    procpool::ProcessPool pool({.workers = 2, .limits = {.open_files = 32, .processes = 500}});
    for (int i = 0; i < 4; ++i) {
      int opened = pool.submit(open_until_refused, 1000).get();
      CHECK(opened > 0);   // refused with EMFILE
      CHECK(opened < 32);  // 0-2, the doorbell and the channel are open too
      CHECK(pool.submit(soft_limit, int{RLIMIT_NOFILE}).get() == 32);
      CHECK(pool.submit(soft_limit, int{RLIMIT_NPROC}).get() == 500);
    }
  }
  CHECK(census::leaks_since(before) == "");
}

namespace {
struct BombOutcome {
  int children = 0;  // forked before fork failed
  int error = 0;     // why it failed
  template <class Archive>
  void serialize(Archive& ar) {
    ar(children, error);
  }
};
// Forks children that wait, until fork fails; holds them `hold_ms`, then
// kills and reaps them.
BombOutcome fork_bomb(int hold_ms) {
  BombOutcome out;
  std::vector<pid_t> kids;
  for (int i = 0; i < 10000; ++i) {
    pid_t pid = ::fork();
    if (pid == 0) {
      for (;;) ::pause();
    }
    if (pid < 0) {
      out.error = errno;
      break;
    }
    kids.push_back(pid);
  }
  out.children = static_cast<int>(kids.size());
  std::this_thread::sleep_for(std::chrono::milliseconds(hold_ms));
  for (pid_t k : kids) ::kill(k, SIGKILL);
  for (pid_t k : kids) ::waitpid(k, nullptr, 0);
  return out;
}
PROCPOOL_REGISTER(fork_bomb);
}  // namespace

TEST_CASE("ResourceLimits.AForkBombUnderTheProcessesLimitIsContainedAndTheHostStillForks" * doctest::timeout(60)) {
  // RLIMIT_NPROC counts the processes of a user and is not enforced for
  // root: the host runs as an unprivileged user, in a child of this test.
  if (::geteuid() != 0) {
    MESSAGE("skipped: needs root to become another user");
    return;
  }
  int failed = census::exit_code_in_child([&] {
    if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) _exit(9);
    int code = 0;
    {
      procpool::ProcessPool pool(
          {.workers = 1, .start_method = procpool::StartMethod::fork, .limits = {.processes = 64}});
      auto bomb = pool.submit(fork_bomb, 1000);
      std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the bomb holds every process it could make
      pid_t pid = ::fork();                                         // the host's own limit is its own: not 64
      if (pid == 0) _exit(0);
      if (pid < 0) code |= 1;
      else ::waitpid(pid, nullptr, 0);
      BombOutcome out = bomb.get();
      if (out.error != EAGAIN) code |= 2;
      if (out.children <= 0 || out.children >= 64) code |= 4;
      if (pool.submit(tasks::add, 1, 1).get() != 2) code |= 8;  // the worker serves on
    }
    return code;
  });
  CHECK(failed == 0);
}

TEST_CASE("ResourceLimits.CpuTimePerCallKillsASpinningCallAndThePoolGoesOn" * doctest::timeout(60)) {
  census::Snapshot before;
  {
    procpool::ProcessPool pool({.workers = 1, .limits = {.cpu = 1s}});
    pid_t first = pool.worker_pids().at(0);
    // Per call, not per life: four calls of 0.6 s each in one worker.
    for (int i = 0; i < 4; ++i) CHECK(pool.submit(spin_cpu_ms, 600).get() == first);
    auto spinning = pool.submit(spin_cpu_ms, 60000);
    auto e = limit_error(spinning);
    CHECK(e.limit() == "cpu");
    CHECK(e.maximum() == 1);
    CHECK(std::string(e.what()).find("SIGXCPU") != std::string::npos);
    CHECK(std::string(e.what()).find("'spin_cpu_ms'") != std::string::npos);
    CHECK(std::string(e.what()).find("(limit cpu = 1 s)") != std::string::npos);
    CHECK(pool.submit(tasks::add, 2, 2).get() == 4);
    CHECK(pool.worker_pids().at(0) != first);
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("ResourceLimits.FileSizeLimitKillsAWriteTooFarAndThePoolGoesOn" * doctest::timeout(60)) {
  census::Snapshot before;
  std::string path = "/tmp/procpool-limits-fsize-" + std::to_string(getpid());
  {
    procpool::ProcessPool pool({.workers = 1, .limits = {.file_size = 1 << 20}});
    pid_t first = pool.worker_pids().at(0);
    CHECK(pool.submit(write_bytes, path, 1L << 19).get() == first);  // under it
    auto writer = pool.submit(write_bytes, path, 2L << 20);
    auto e = limit_error(writer);
    CHECK(e.limit() == "file_size");
    CHECK(e.maximum() == 1 << 20);
    CHECK(std::string(e.what()).find("SIGXFSZ") != std::string::npos);
    CHECK(pool.submit(tasks::add, 2, 2).get() == 4);
    CHECK(pool.worker_pids().at(0) != first);
  }
  std::remove(path.c_str());
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("ResourceLimits.AnUncaughtBadAllocUnderTheMemoryLimitIsTypedAndTheWorkerStays" * doctest::timeout(60) *
          doctest::skip(kSanitizerAllocator)) {
  census::Snapshot before;
  {
    uint64_t limit = host_address_space() + (uint64_t{512} << 20);
    procpool::ProcessPool pool({.workers = 1, .limits = {.memory = limit}});
    pid_t first = pool.worker_pids().at(0);
    CHECK(pool.submit(allocate_mib, 64L).get() == first);  // well within it
    auto big = pool.submit(allocate_mib, 2048L);
    auto e = limit_error(big);
    CHECK(e.limit() == "memory");
    CHECK(e.maximum() == limit);
    CHECK(std::string(e.what()).find("'allocate_mib' ran out of memory") != std::string::npos);
    CHECK(std::string(e.what()).find("std::bad_alloc") != std::string::npos);
    CHECK(pool.submit(allocate_mib, 64L).get() == first);  // the same worker
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("ResourceLimits.AWorkerKilledAfterAFailedAllocationIsTypedAndReplaced" * doctest::timeout(60) *
          doctest::skip(kSanitizerAllocator)) {
  census::Snapshot before;
  {
    uint64_t limit = host_address_space() + (uint64_t{512} << 20);
    procpool::ProcessPool pool({.workers = 1, .limits = {.memory = limit}});
    pid_t first = pool.worker_pids().at(0);
    auto dying = pool.submit(die_allocating_mib, 2048L);
    auto e = limit_error(dying);
    CHECK(e.limit() == "memory");
    CHECK(std::string(e.what()).find("an allocation failed") != std::string::npos);
    CHECK(std::string(e.what()).find("SIGABRT") != std::string::npos);
    CHECK(pool.submit(tasks::add, 2, 2).get() == 4);
    CHECK(pool.worker_pids().at(0) != first);
    // Not every death under a memory limit is the limit's: a plain crash stays one.
    CHECK_THROWS_AS(pool.submit(tasks::crash, std::string("abort")).get(), procpool::WorkerCrashed);
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("ResourceLimits.WithoutLimitsABadAllocStaysABadAlloc" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  CHECK_THROWS_AS(pool.submit(tasks::throw_kind, std::string("bad_alloc")).get(), std::bad_alloc);
}
