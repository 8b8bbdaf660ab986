// SPDX-License-Identifier: MIT
// What each sandbox profile costs: the hot no-op round trip, and a
// 2-worker pool's start-up, each measured interleaved with the same thing
// unsandboxed in this process, as supervision_cost does for deadlines. All
// on forkserver workers, the start method a sandboxed pool gets by default,
// so that only the sandbox differs. A sandboxed worker, after its
// initializer, sets no_new_privs, scrubs its environment, (read_only_files)
// builds and enforces a Landlock ruleset, installs the path-query handler,
// then builds and loads its seccomp filter (libseccomp): the start-up
// figure holds all of it; the round trip, the filter run on the worker's
// few syscalls per call.
#include <procpool/procpool.hpp>
#include <procpool/sandbox/enter_sandbox.hpp>

#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "../bench_util.hpp"
#include "protocol.hpp"
#include "sandbox_figures.hpp"

namespace {

void sandboxed_noop() {}
PROCPOOL_REGISTER(sandboxed_noop);

}  // namespace

namespace bench {
namespace {

constexpr const char* kSystem = "procpool-forkserver";

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "procpool sandbox cost: %s\n", what.c_str());
  std::exit(1);
}

// The profiles measured, each against "none", in the order of the report.
// "pid_namespace" is no sandbox but Namespaces{.pid = true}: the keeper and
// the init forked in front of each worker (pid_namespace.hpp).
constexpr std::array<const char*, 4> kProfiles = {"none", "compute_only", "read_only_files", "pid_namespace"};

procpool::PoolOptions options(const char* profile, size_t workers) {
  procpool::PoolOptions o;
  o.workers = workers;
  o.start_method = procpool::StartMethod::forkserver;
  std::string p = profile;
  if (p == "compute_only") o.sandbox = procpool::Sandbox::compute_only();
  // One readable path, as a task reading its inputs from one directory.
  if (p == "read_only_files") o.sandbox = procpool::Sandbox::read_only_files({"/usr/share"});
  if (p == "pid_namespace") o.namespaces.pid = true;
  return o;
}

// Blocking no-op round trips, worker hot: interleaved batches on a pool of
// each profile (all alive throughout), the median of each's batch means.
// The seccomp filter runs on every syscall the worker makes: a hot worker
// makes few (it spins before it sleeps on its futex).
void round_trips(int round, int calls) {
  std::array<std::optional<procpool::ProcessPool>, kProfiles.size()> pools;
  for (size_t p = 0; p < kProfiles.size(); ++p) pools[p].emplace(options(kProfiles[p], 1));
  for (int i = 0; i < calls / 10; ++i)
    for (auto& pool : pools) pool->submit(sandboxed_noop).get();
  auto batch = [&](procpool::ProcessPool& pool) {
    auto t0 = Clock::now();
    for (int i = 0; i < calls; ++i) pool.submit(sandboxed_noop).get();
    return micros(Clock::now() - t0) / calls;
  };
  constexpr int kBatches = 7;
  std::array<std::vector<double>, kProfiles.size()> means;
  for (int b = 0; b < kBatches; ++b)
    for (size_t k = 0; k < kProfiles.size(); ++k) {
      size_t p = (k + static_cast<size_t>(b)) % kProfiles.size();  // rotated: none is not always first
      means[p].push_back(batch(*pools[p]));
    }
  for (size_t p = 0; p < kProfiles.size(); ++p) emit(kSystem, "sandbox_rtt", kProfiles[p], round, median(means[p]));
}

// A fresh 2-worker pool from its constructor to the first no-op's result,
// the profiles in a rotating order (the sandboxed worker enters its
// sandbox before it takes the call).
void startups(int round, int samples) {
  std::array<std::vector<double>, kProfiles.size()> ms;
  for (int s = 0; s < samples; ++s)
    for (size_t k = 0; k < kProfiles.size(); ++k) {
      size_t p = (k + static_cast<size_t>(s)) % kProfiles.size();
      std::optional<procpool::ProcessPool> pool;
      auto t0 = Clock::now();
      pool.emplace(options(kProfiles[p], 2));
      pool->submit(sandboxed_noop).get();
      ms[p].push_back(millis(Clock::now() - t0));
    }
  for (size_t p = 0; p < kProfiles.size(); ++p) {
    emit(kSystem, "sandbox_startup", kProfiles[p], round, median(ms[p]));
    std::fprintf(stderr, "  sandbox %s: start-up median %.2f ms of %zu\n", kProfiles[p], median(ms[p]), ms[p].size());
  }
}

double cpu_micros() {
  timespec t{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e6 + static_cast<double>(t.tv_nsec) / 1e3;
}

// enter_sandbox alone, timed inside a child forked for it (what a worker
// pays after its initializer, without the fork and the pool's hand-shake
// around it, which the start-up figure holds and which dwarf it): µs of
// wall time, and of the child's CPU time, which a loaded machine's waits
// for a core do not inflate.
// Forked before this program makes any pool, so that the child's
// allocations (libseccomp builds the filter) meet no lock held by a thread.
void entering(int round, int samples) {
  for (size_t p = 1; p < kProfiles.size(); ++p) {
    procpool::Sandbox sandbox = options(kProfiles[p], 1).sandbox;
    if (!sandbox.enabled()) continue;
    std::vector<double> us, cpu_us;
    for (int s = 0; s < samples; ++s) {
      int pipe_fds[2];
      if (::pipe(pipe_fds) != 0) fail("pipe");
      pid_t pid = ::fork();
      if (pid < 0) fail("fork");
      if (pid == 0) {
        auto t0 = Clock::now();
        double cpu0 = cpu_micros();
        const char* failed = procpool::detail::enter_sandbox(sandbox);
        double elapsed[2] = {failed ? -1 : micros(Clock::now() - t0), cpu_micros() - cpu0};
        (void)!::write(pipe_fds[1], elapsed, sizeof elapsed);  // write and exit_group: allowed by both
        ::_exit(0);
      }
      ::close(pipe_fds[1]);
      double elapsed[2] = {-1, -1};
      bool got = ::read(pipe_fds[0], elapsed, sizeof elapsed) == sizeof elapsed;
      ::close(pipe_fds[0]);
      ::waitpid(pid, nullptr, 0);
      if (!got || elapsed[0] < 0) fail(std::string("entering ") + kProfiles[p] + " failed in the child");
      us.push_back(elapsed[0]);
      cpu_us.push_back(elapsed[1]);
    }
    emit(kSystem, "sandbox_enter", kProfiles[p], round, median(us));
    emit(kSystem, "sandbox_enter_cpu", kProfiles[p], round, median(cpu_us));
    std::fprintf(stderr, "  sandbox %s: entered in a median %.0f µs (%.0f µs of CPU) of %zu\n", kProfiles[p],
                 median(us), median(cpu_us), us.size());
  }
}

}  // namespace

void measure_sandbox_cost(const RoundOptions& options) {
  try {
    entering(options.round, options.quick ? 3 : 20);
    round_trips(options.round, options.quick ? 1000 : 5000);
    startups(options.round, options.quick ? 2 : 10);
  } catch (const std::exception& e) {
    fail(e.what());
  }
}

}  // namespace bench
