// SPDX-License-Identifier: MIT
// procpool's side of the start-methods benchmark (bench/python/
// start_methods.py is Python's): what starting and replacing a worker costs
// under each start method, with the host holding 10 MiB, then 1 GiB, of
// extra heap. The heap is allocated here, long after main's procpool::init
// forked the zygote, so that the zygote holds none of it: fork copies the
// host's page tables, forkserver and spawn should not care how big the
// host is. What each figure means is in figures.hpp.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <procpool/procpool.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../bench_util.hpp"
#include "host_heap.hpp"
#include "protocol.hpp"
#include "system.hpp"

namespace {

void start_noop() {}
PROCPOOL_REGISTER(start_noop);

// A worker killed mid-call, as pp_tasks.kill_self: no backtrace to write,
// no answer; only the death tells the pool.
void kill_self() { ::kill(::getpid(), SIGKILL); }
PROCPOOL_REGISTER(kill_self);

}  // namespace

namespace bench {
namespace {

using procpool::StartMethod;

constexpr StartMethod kMethods[] = {StartMethod::fork, StartMethod::forkserver, StartMethod::spawn};
constexpr const char* kHostSystem = "procpool-host";  // the host itself: its RSS, a bare fork of it
constexpr int kCallsPerPool = 2;                      // timed calls per pool, as start_methods.py's respawn
constexpr int kBackToBack = 6;                        // sm_respawn_spare's calls per pool
// A spare counted by stats() is forked, not yet ready: its set-up (an exec
// and a dynamic link for spawn, copy-on-write faults for a fork of a large
// host) takes a few milliseconds more.
constexpr auto kSpareSettle = std::chrono::milliseconds(30);

struct Heap {
  const char* label;  // as start_methods.py's params
  size_t bytes;
  int samples;  // per start method and figure (pools; each times kCallsPerPool calls where it says so)
};

std::vector<Heap> heaps(bool quick) {
  constexpr size_t kMiB = size_t{1} << 20;
  if (quick) return {{"10MiB", 10 * kMiB, 1}, {"1GiB", 1024 * kMiB, 1}};
  // Few a round (the suite's rounds add up: 3 rounds, 15 and 9 pools), so
  // that the group takes under 2 minutes with Python's side; fewer of the
  // 1 GiB host, each fork of which copies 2 MiB of page tables.
  return {{"10MiB", 10 * kMiB, 5}, {"1GiB", 1024 * kMiB, 3}};
}

std::string system_of(StartMethod m) { return std::string("procpool-") + procpool::to_string(m); }

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "procpool start methods: %s\n", what.c_str());
  std::exit(1);
}

double load_average() {
  double load = 0;
  std::ifstream("/proc/loadavg") >> load;
  return load;
}

std::string thp_mode() {
  std::string mode;
  std::getline(std::ifstream("/sys/kernel/mm/transparent_hugepage/enabled"), mode);
  return mode.empty() ? "unknown" : mode;
}

using Samples = std::map<std::string, std::vector<double>>;  // figure -> ms

procpool::PoolOptions pool_options(StartMethod m, size_t workers) {
  procpool::PoolOptions o;
  o.workers = workers;
  o.start_method = m;
  return o;
}

// sm_startup: a fresh 2-worker pool, from its constructor to the first
// no-op's result. Its destruction is not timed.
void sample_startup(StartMethod m, Samples& out) {
  std::optional<procpool::ProcessPool> pool;
  auto t0 = Clock::now();
  pool.emplace(pool_options(m, 2));
  pool->submit(start_noop).get();
  out["sm_startup"].push_back(millis(Clock::now() - t0));
}

// sm_respawn: one worker that serves one call (max_tasks_per_child = 1) and
// no spare: from one no-op's result to the next one's, submitted at once,
// which waits for a worker started after the last one retired.
void sample_respawn(StartMethod m, Samples& out) {
  auto o = pool_options(m, 1);
  o.max_tasks_per_child = 1;
  o.spare_workers = 0;
  procpool::ProcessPool pool(o);
  pool.submit(start_noop).get();
  for (int i = 0; i < kCallsPerPool; ++i) {
    auto t0 = Clock::now();
    pool.submit(start_noop).get();
    out["sm_respawn"].push_back(millis(Clock::now() - t0));
  }
}

void await_spare(procpool::ProcessPool& pool) {
  auto give_up = Clock::now() + std::chrono::seconds(10);
  while (pool.stats().spare_workers == 0) {
    if (Clock::now() > give_up) fail("no spare worker 10 s after a replacement");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::this_thread::sleep_for(kSpareSettle);
}

// The same with the default spare_workers = 1. A pool keeps a spare from
// its first replacement on, and refills a taken one 5 ms later
// (worker_forker.cpp), so calls back to back outrun the refill: one finds
// the spare, the next waits for a start, and so on. sm_respawn_spare is
// the mean of kBackToBack calls back to back (a median would pick one of
// the two kinds), what a stream of retirements costs each call;
// sm_respawn_spare_ready times a call made once the spare is ready, what
// a retirement costs a caller who is not back to back.
void sample_respawn_spare(StartMethod m, Samples& out) {
  auto o = pool_options(m, 1);
  o.max_tasks_per_child = 1;
  procpool::ProcessPool pool(o);
  pool.submit(start_noop).get();
  pool.submit(start_noop).get();  // the first replacement: spares are kept from now on
  await_spare(pool);
  auto t0 = Clock::now();
  for (int i = 0; i < kBackToBack; ++i) pool.submit(start_noop).get();
  out["sm_respawn_spare"].push_back(millis(Clock::now() - t0) / kBackToBack);
  for (int i = 0; i < kCallsPerPool; ++i) {
    await_spare(pool);
    auto t0 = Clock::now();
    pool.submit(start_noop).get();
    out["sm_respawn_spare_ready"].push_back(millis(Clock::now() - t0));
  }
}

// sm_crash_replace: one worker and no spare (so that the start method, not
// a spare, replaces it): a call whose worker dies by SIGKILL, a no-op
// submitted just after it; from the crashing call's submit to the no-op's
// result. sm_rebuild: the same from the crashing call's WorkerCrashed on,
// as start_methods.py times Python's from BrokenProcessPool.
void sample_crash(StartMethod m, Samples& out) {
  auto o = pool_options(m, 1);
  o.spare_workers = 0;
  procpool::ProcessPool pool(o);
  pool.submit(start_noop).get();
  for (int i = 0; i < kCallsPerPool; ++i) {
    auto t0 = Clock::now();
    auto crashing = pool.submit(kill_self);
    auto next = pool.submit(start_noop);
    try {
      crashing.get();
      fail("kill_self returned");
    } catch (const procpool::WorkerCrashed&) {
    }
    auto failed = Clock::now();
    next.get();
    auto served = Clock::now();
    out["sm_crash_replace"].push_back(millis(served - t0));
    out["sm_rebuild"].push_back(millis(served - failed));
  }
}

// sm_fork_return, sm_fork_wait: a bare fork() of this host, its child
// calling _exit(0) at once, as start_methods.py's bare_fork: the floor
// under StartMethod::fork at this heap.
void bare_fork(const Heap& heap, int round) {
  std::vector<double> returned, reaped;
  for (int i = 0; i < 5 * heap.samples; ++i) {
    auto t0 = Clock::now();
    pid_t pid = ::fork();
    if (pid == 0) _exit(0);
    if (pid < 0) fail("fork failed");
    returned.push_back(millis(Clock::now() - t0));
    int status;
    ::waitpid(pid, &status, 0);
    reaped.push_back(millis(Clock::now() - t0));
  }
  emit(kHostSystem, "sm_fork_return", heap.label, round, median(returned));
  emit(kHostSystem, "sm_fork_wait", heap.label, round, median(reaped));
}

// Every figure at one heap size. Samples are interleaved: each sample
// measures every start method once, in an order that rotates, so that the
// machine's load drifting spreads over all of them.
void measure_heap(const Heap& heap, int round) {
  HostHeap held(heap.bytes);
  emit(kHostSystem, "sm_host_rss", heap.label, round, static_cast<double>(resident_bytes()) / (1 << 20));
  bare_fork(heap, round);
  std::map<StartMethod, Samples> found;
  constexpr int kCount = std::size(kMethods);
  for (int i = 0; i < heap.samples; ++i) {
    for (int k = 0; k < kCount; ++k) {
      StartMethod m = kMethods[(i + k) % kCount];
      Samples& s = found[m];
      sample_startup(m, s);
      sample_respawn(m, s);
      sample_respawn_spare(m, s);
      sample_crash(m, s);
    }
  }
  for (StartMethod m : kMethods)
    for (const auto& [figure, ms] : found[m]) {
      emit(system_of(m), figure, heap.label, round, median(ms));
      std::fprintf(stderr, "  %s %s heap=%s: median %.2f ms of %zu\n", system_of(m).c_str(), figure.c_str(), heap.label,
                   median(ms), ms.size());
    }
}

}  // namespace

void measure_start_methods(const RoundOptions& options) {
  int r = options.round;
  emit_note(kHostSystem, "sm_fork_wait",
            "fork(), child _exit(0), parent waitpid(); transparent huge pages: " + thp_mode());
  try {
    for (const Heap& heap : heaps(options.quick)) {
      std::fprintf(stderr, "  procpool start methods round %d: heap %s (load %.1f)\n", r, heap.label, load_average());
      measure_heap(heap, r);
    }
  } catch (const std::exception& e) {
    fail(e.what());
  }
}

}  // namespace bench
