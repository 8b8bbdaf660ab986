// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>
#include <sched.h>

#include <atomic>
#include <optional>
#include <thread>

#include <procpool/common/cpu_relax.hpp>
#include <procpool/common/cpu_yield.hpp>
#include <procpool/common/event_word.hpp>
#include <procpool/worker/step_aside.hpp>

#include "support/census.hpp"
#include "support/task_functions.hpp"

TEST_CASE("Load.HundredThousandTasksAllResolve" * doctest::timeout(120)) {
  procpool::ProcessPool pool({.workers = 2});
  constexpr int kTasks = 100'000;
  std::vector<procpool::Future<int>> fs;
  fs.reserve(kTasks);
  for (int i = 0; i < kTasks; ++i) fs.push_back(pool.submit(tasks::identity, i));
  long long wrong = 0;
  for (int i = 0; i < kTasks; ++i) wrong += fs[static_cast<size_t>(i)].get() != i;
  CHECK(wrong == 0);
}

TEST_CASE("Load.EightThreadsSubmitAtOnce" * doctest::timeout(120)) {
  procpool::ProcessPool pool({.workers = 2});
  constexpr int kThreads = 8, kEach = 5'000;
  std::vector<std::thread> threads;
  std::atomic<long long> wrong{0}, done{0};
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      std::vector<procpool::Future<int>> fs;
      for (int i = 0; i < kEach; ++i) fs.push_back(pool.submit(tasks::add, t * 1'000'000, i));
      for (int i = 0; i < kEach; ++i) {
        wrong += fs[static_cast<size_t>(i)].get() != t * 1'000'000 + i;
        ++done;
      }
    });
  for (auto& th : threads) th.join();
  CHECK(wrong == 0);
  CHECK(done == kThreads * kEach);
}

TEST_CASE("Load.MixedCrashesUnderLoadLoseNothing" * doctest::timeout(120)) {
  procpool::ProcessPool pool({.workers = 2});
  std::vector<procpool::Future<int>> fs;
  for (int i = 0; i < 20'000; ++i)
    fs.push_back(i % 2000 == 999 ? pool.submit(tasks::crash, std::string("segv")) : pool.submit(tasks::identity, i));
  int crashed = 0, wrong = 0;
  for (int i = 0; i < 20'000; ++i) {
    try {
      wrong += fs[static_cast<size_t>(i)].get() != i;
    } catch (const procpool::WorkerCrashed&) {
      ++crashed;
      wrong += i % 2000 != 999;
    }
  }
  CHECK(crashed == 10);
  CHECK(wrong == 0);
}

// A burst of submits turns the reactor from doorbells to timed sweeps of the
// rings: answers that no thread polls for must still settle, during the
// burst and after it, when the doorbells come back.
TEST_CASE("Load.ABurstsCallbacksAllRunThoughNoThreadWaits" * doctest::timeout(120)) {
  procpool::ProcessPool pool({.workers = 2});
  constexpr int kTasks = 50'000;
  std::atomic<int> ran{0}, wrong{0};
  for (int i = 0; i < kTasks; ++i)
    pool.submit(tasks::identity, i).then([&, i](procpool::Future<int> f) {
      wrong += f.get() != i;
      ++ran;
    });
  CHECK(census::eventually([&] { return ran.load() == kTasks; }, std::chrono::seconds(60)));
  CHECK(wrong == 0);
  // Long after the burst: a lone call is answered with nobody polling.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::atomic<bool> lone{false};
  pool.submit(tasks::identity, 7).then([&](procpool::Future<int> f) { lone = f.get() == 7; });
  CHECK(census::eventually([&] { return lone.load(); }));
}

// A spin's yields hand the CPU to whatever else is runnable on it: another
// program's busy thread takes a whole slice. The first such yield ends the
// spin, and the thread's spins end at their first yield for a while after
// (common/cpu_yield.hpp), instead of giving a slice away at every gap.
TEST_CASE("Load.AYieldThatLostTheCpuToABusyThreadEndsTheSpinAndTheNextOnes" * doctest::timeout(60)) {
  using procpool::detail::CpuYield;
  bool slow_seen = false, next_went_on = true;
  CpuYield::Clock::duration next_took{};
  std::thread probe([&] {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
    std::atomic<bool> started{false}, stop{false};
    std::thread busy([&] {
      sched_setaffinity(0, sizeof one, &one);
      started = true;
      while (!stop.load(std::memory_order_relaxed)) procpool::detail::cpu_relax();
    });
    while (!started) sched_yield();
    CpuYield& yield = CpuYield::this_thread();
    for (int tries = 0; tries < 100 && !slow_seen; ++tries) slow_seen = !yield.between_polls(CpuYield::Clock::now());
    auto before = CpuYield::Clock::now();
    next_went_on = yield.between_polls(before);
    next_took = CpuYield::Clock::now() - before;
    stop = true;
    busy.join();
  });
  probe.join();
  CHECK(slow_seen);
  CHECK_FALSE(next_went_on);
  CHECK(next_took < CpuYield::kSlowYield);  // it did not yield again
}

// The first two CPUs this process may run on, as sets: `one` holds the
// first (the host's, in these tests), `two` both. Null with one CPU only.
struct TwoCpus {
  int first = -1, second = -1;
  cpu_set_t one, two;
};
std::optional<TwoCpus> two_cpus() {
  cpu_set_t allowed;
  REQUIRE(sched_getaffinity(0, sizeof allowed, &allowed) == 0);
  TwoCpus cpus;
  for (int c = 0; c < CPU_SETSIZE && cpus.second < 0; ++c)
    if (CPU_ISSET(c, &allowed)) (cpus.first < 0 ? cpus.first : cpus.second) = c;
  if (cpus.second < 0) return std::nullopt;
  CPU_ZERO(&cpus.one);
  CPU_SET(cpus.first, &cpus.one);
  cpus.two = cpus.one;
  CPU_SET(cpus.second, &cpus.two);
  return cpus;
}

// A worker woken onto the host thread's CPU while that CPU is contended
// moves to another of its CPUs (worker/step_aside.hpp), and keeps the set
// of CPUs it had; at most once per interval, and never where the host's
// CPU is its only one.
TEST_CASE("Load.AWorkerOnTheHostsCpuMovesToAnotherOfItsCpusAndKeepsItsSet" * doctest::timeout(60)) {
  using procpool::detail::StepAside;
  auto cpus = two_cpus();
  if (!cpus) {
    MESSAGE("one CPU only: nothing to move to");
    return;
  }
  auto [first, second, one, two] = *cpus;
  std::thread probe([&] {  // sched_setaffinity(0, ...) is this thread's own
    // On `first`, free to run on either.
    REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
    REQUIRE(sched_getcpu() == first);
    REQUIRE(sched_setaffinity(0, sizeof two, &two) == 0);
    StepAside step;
    auto now = StepAside::Clock::now();
    CHECK(step.away_from(first, now));
    CHECK(sched_getcpu() == second);
    cpu_set_t after;
    REQUIRE(sched_getaffinity(0, sizeof after, &after) == 0);
    CHECK(CPU_EQUAL(&after, &two));
    // Once per interval: the next try, at once, does nothing.
    REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
    REQUIRE(sched_setaffinity(0, sizeof two, &two) == 0);
    CHECK_FALSE(step.away_from(first, now + StepAside::kInterval / 2));
    // The host's CPU is its only one: it stays, its set untouched.
    REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
    CHECK_FALSE(step.away_from(first, now + StepAside::kInterval));
    REQUIRE(sched_getaffinity(0, sizeof after, &after) == 0);
    CHECK(CPU_EQUAL(&after, &one));
    CHECK(sched_getcpu() == first);
  });
  probe.join();
}

// A worker that must sleep while on the host thread's contended CPU sleeps
// with that CPU out of its set (worker/step_aside.hpp), so that the host's
// wake-up places it on another CPU instead of preempting the host; awake,
// it has its set back. Never where the host's CPU is its only one, or the
// host's CPU is unknown.
TEST_CASE("Load.AWorkerAsleepOffTheHostsCpuIsWokenOnAnotherAndGetsItsSetBack" * doctest::timeout(60)) {
  using procpool::detail::SleepAway;
  auto cpus = two_cpus();
  if (!cpus) {
    MESSAGE("one CPU only: nothing to move to");
    return;
  }
  auto [first, second, one, two] = *cpus;
  std::atomic<uint32_t> word{0};
  std::atomic<bool> asleep{false};
  int woken_on = -1;
  bool excluded = false, back = false;
  std::thread sleeper([&] {  // sched_setaffinity(0, ...) is this thread's own
    // On `first`, the host's, free to run on either.
    REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
    REQUIRE(sched_getcpu() == first);
    REQUIRE(sched_setaffinity(0, sizeof two, &two) == 0);
    {
      SleepAway away(first);
      CHECK(away.moved());
      cpu_set_t during;
      REQUIRE(sched_getaffinity(0, sizeof during, &during) == 0);
      excluded = !CPU_ISSET(first, &during) && CPU_ISSET(second, &during);
      while (word.load() == 0) {
        asleep = true;
        procpool::detail::futex_wait(word, 0, nullptr);
      }
      woken_on = sched_getcpu();
    }
    cpu_set_t after;
    REQUIRE(sched_getaffinity(0, sizeof after, &after) == 0);
    back = CPU_EQUAL(&after, &two);
  });
  // The waker runs on the host's CPU, as a submitting host thread would.
  std::thread waker([&] {
    REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
    while (!asleep) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // into its futex_wait
    word = 1;
    procpool::detail::futex_wake_all(word);
  });
  waker.join();
  sleeper.join();
  CHECK(excluded);
  CHECK(woken_on == second);
  CHECK(back);

  std::thread alone([&] {
    // The host's CPU is its only one: it stays, its set untouched.
    REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
    {
      SleepAway away(first);
      CHECK_FALSE(away.moved());
      CHECK(sched_getcpu() == first);
    }
    cpu_set_t after;
    REQUIRE(sched_getaffinity(0, sizeof after, &after) == 0);
    CHECK(CPU_EQUAL(&after, &one));
    // The host's CPU unknown (-1: it has not written yet): nothing moves.
    REQUIRE(sched_setaffinity(0, sizeof two, &two) == 0);
    SleepAway unknown(-1);
    CHECK_FALSE(unknown.moved());
    REQUIRE(sched_getaffinity(0, sizeof after, &after) == 0);
    CHECK(CPU_EQUAL(&after, &two));
  });
  alone.join();
}
