// SPDX-License-Identifier: MIT
// Where a call is (Future::status(), running()) and what the pool has done
// and holds (ProcessPool::stats()).
#include <doctest/doctest.h>

#include <sys/mman.h>
#include <time.h>

#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/census.hpp"
#include "support/task_functions.hpp"

namespace {
using namespace std::chrono_literals;

// Touches `mib` MiB and keeps it until the worker dies: its resident memory
// shows in stats().
int hold_memory(int mib) {
  static std::vector<char> kept;
  kept.assign(static_cast<size_t>(mib) << 20, 1);
  return static_cast<int>(kept.size() >> 20);
}
PROCPOOL_REGISTER(hold_memory);

// Burns `cpu_ms` of CPU time, and touches `mib` MiB it frees before returning.
int burn_and_touch(int cpu_ms, int mib) {
  timespec start{}, now{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &start);
  do clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 < cpu_ms);
  if (mib < 0) throw std::invalid_argument("negative size");
  // mmap, not the heap: unmapped at once, whatever the allocator (or a
  // sanitizer's quarantine) would keep.
  size_t bytes = static_cast<size_t>(mib) << 20;
  if (bytes == 0) return 0;
  void* block = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (block == MAP_FAILED) throw std::bad_alloc();
  std::memset(block, 1, bytes);
  ::munmap(block, bytes);
  return mib;
}
PROCPOOL_REGISTER(burn_and_touch);

int spin_until_stopped() {
  for (;;) asm volatile("");
}
PROCPOOL_REGISTER(spin_until_stopped);

}  // namespace

TEST_CASE("Introspection.ACallIsPendingThenRunningInItsWorkerThenDone") {
  procpool::ProcessPool pool({.workers = 1});
  pool.submit(tasks::noop).get();
  auto first = pool.submit(tasks::sleep_ms, 300);
  auto second = pool.submit(tasks::noop);  // behind it, on the only worker
  REQUIRE(census::eventually([&] { return first.running(); }, 2000ms));
  procpool::CallStatus now = first.status();
  CHECK(now.state == procpool::CallState::running);
  CHECK(now.worker == pool.worker_pids().at(0));
  CHECK(second.status().state == procpool::CallState::pending);
  CHECK(second.status().worker == 0);
  CHECK_FALSE(second.running());
  first.get();
  CHECK(first.status().state == procpool::CallState::done);
  CHECK(first.status().worker == 0);
  second.get();
  CHECK(second.status().state == procpool::CallState::done);
}

TEST_CASE("Introspection.ACancelledCallSaysCancelledAndAFailedOneDone") {
  procpool::ProcessPool pool({.workers = 1});
  auto blocker = pool.submit(tasks::sleep_ms, 200);
  auto queued = pool.submit(tasks::noop);
  REQUIRE(queued.cancel());
  CHECK(queued.status().state == procpool::CallState::cancelled);
  auto raising = pool.call<int>("throw_kind", std::string("invalid_argument"));
  CHECK_THROWS_AS(raising.get(), std::invalid_argument);
  CHECK(raising.status().state == procpool::CallState::done);
  blocker.get();
}

TEST_CASE("Introspection.StatsCountEachCallUnderItsOneOutcome") {
  procpool::ProcessPool pool({.workers = 2});
  std::vector<procpool::Future<int>> ok;
  for (int i = 0; i < 10; ++i) ok.push_back(pool.submit(tasks::identity, i));
  for (auto& f : ok) f.get();
  auto raised = pool.call<int>("throw_kind", std::string("out_of_range"));
  CHECK_THROWS(raised.get());
  auto crashed = pool.call<int>("crash", std::string("segv"));
  CHECK_THROWS_AS(crashed.get(), procpool::WorkerCrashed);
  auto timed_out = pool.submit_with({.timeout = 50ms}, spin_until_stopped);
  CHECK_THROWS_AS(timed_out.get(), procpool::TaskTimeout);
  auto running = pool.submit(spin_until_stopped);
  REQUIRE(census::eventually([&] { return running.running(); }, 2000ms));
  CHECK(running.cancel());  // stops its worker: TaskCancelled
  // The pool learns of each death on its own thread: wait for the third
  // (the cancelled call's worker is being stopped) and its replacement.
  REQUIRE(census::eventually(
      [&] {
        auto now = pool.stats();
        return now.respawns == 3 && now.worker_deaths == 3;
      },
      3000ms));
  pool.submit(tasks::noop).get();

  procpool::PoolStats s = pool.stats();
  CHECK(s.submitted == 15);
  CHECK(s.succeeded == 11);
  CHECK(s.raised == 1);
  CHECK(s.crashed == 1);
  CHECK(s.timed_out == 1);
  CHECK(s.cancelled == 1);
  CHECK(s.protocol_errors == 0);
  CHECK(s.shut_down == 0);
  CHECK(s.settled() == s.submitted);
  CHECK(s.worker_deaths == 3);  // the crash, the deadline, the cancel
  CHECK(s.respawns == 3);
  CHECK(s.queued == 0);
  CHECK(s.in_flight == 0);
}

TEST_CASE("Introspection.StatsShowTheQueueAndEachWorkersCallsAndMemory") {
  census::Snapshot before;
  {
    procpool::ProcessPool pool({.workers = 1, .prefetch_per_worker = 2});
    CHECK(pool.submit(hold_memory, 64).get() == 64);
    auto blocker = pool.submit(tasks::sleep_ms, 300);
    std::vector<procpool::Future<void>> behind;
    for (int i = 0; i < 5; ++i) behind.push_back(pool.submit(tasks::noop));
    procpool::PoolStats s = pool.stats();
    CHECK(s.in_flight == 2);  // the prefetch depth
    CHECK(s.queued == 4);
    REQUIRE(s.workers.size() == 1);
    const procpool::WorkerStats& w = s.workers[0];
    CHECK(w.pid == pool.worker_pids().at(0));
    CHECK(w.calls_held == 2);
    CHECK(w.calls_answered == 1);
    CHECK(w.rss_bytes >= (uint64_t{64} << 20));
    CHECK(w.rss_bytes < (uint64_t{1} << 30));
    CHECK(w.age > 0ms);
    blocker.get();
    for (auto& f : behind) f.get();
    s = pool.stats();
    CHECK(s.queued == 0);
    CHECK(s.in_flight == 0);
    CHECK(s.workers[0].calls_answered == 7);
    CHECK(s.succeeded == 7);
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Introspection.CallsFailedByTerminateAreCounted") {
  procpool::PoolStats s;
  {
    procpool::ProcessPool pool({.workers = 1, .destructor_wait = 0ms});
    auto stuck = pool.submit(spin_until_stopped);
    auto queued = pool.submit(tasks::noop);
    REQUIRE(census::eventually([&] { return stuck.running(); }, 2000ms));
    pool.terminate();
    CHECK_THROWS_AS(stuck.get(), procpool::PoolShutdown);
    CHECK_THROWS_AS(queued.get(), procpool::PoolShutdown);
    s = pool.stats();
  }
  CHECK(s.submitted == 2);
  CHECK(s.shut_down == 2);
  CHECK(s.settled() == 2);
}

TEST_CASE("Introspection.AMeasuredCallReportsItsWallAndCpuTimeAndPeakMemory") {
  procpool::ProcessPool pool({.workers = 1});
  auto heavy = pool.submit_with({.measure_usage = true}, burn_and_touch, 100, 64);
  CHECK(heavy.get() == 64);
  std::optional<procpool::CallUsage> u = heavy.usage();
  REQUIRE(u.has_value());
  CHECK(u->cpu >= 100ms);
  CHECK(u->wall >= u->cpu - 5ms);  // the worker's other threads (none here) could make CPU exceed wall
  CHECK(u->wall < 30s);
  CHECK(u->peak_rss_bytes >= (uint64_t{64} << 20));
  // The peak is the call's own: the next call's does not include the 64 MiB.
  auto light = pool.submit_with({.measure_usage = true}, burn_and_touch, 1, 0);
  light.get();
  REQUIRE(light.usage().has_value());
  CHECK(light.usage()->peak_rss_bytes + (uint64_t{48} << 20) < u->peak_rss_bytes);
  CHECK(light.usage()->cpu < 100ms);
  // Not asked: none.
  auto plain = pool.submit(burn_and_touch, 1, 0);
  plain.get();
  CHECK_FALSE(plain.usage().has_value());
}

TEST_CASE("Introspection.AMeasuredCallWhoseAnswerCameInPartsReportsItsUsage" * doctest::timeout(30)) {
  // Its trailer is peeled off a reassembled answer, held in one piece: the
  // empty second piece once made a memcpy from null (UBSan; found by
  // fuzz_response_reader).
  procpool::ProcessPool pool({.workers = 1, .ring_bytes = 4096, .measure_usage = true});
  auto big = pool.submit(tasks::make_text, size_t{100'000});
  CHECK(big.get().size() == 100'000);
  REQUIRE(big.usage().has_value());
  CHECK(big.usage()->wall > 0ns);
}

TEST_CASE("Introspection.UsageComesWithAnExceptionAVoidResultAndThePoolsDefault") {
  procpool::ProcessPool pool({.workers = 1, .measure_usage = true});
  auto raising = pool.submit(burn_and_touch, 20, -1);
  CHECK_THROWS_AS(raising.get(), std::invalid_argument);
  REQUIRE(raising.usage().has_value());
  CHECK(raising.usage()->cpu >= 20ms);
  auto nothing = pool.submit(tasks::noop);
  nothing.get();
  CHECK(nothing.usage().has_value());
  auto crashed = pool.call<int>("crash", std::string("segv"));
  CHECK_THROWS_AS(crashed.get(), procpool::WorkerCrashed);
  CHECK_FALSE(crashed.usage().has_value());
  auto opted_out = pool.submit_with({.measure_usage = false}, tasks::noop);
  opted_out.get();
  CHECK_FALSE(opted_out.usage().has_value());
}
