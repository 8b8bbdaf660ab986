// SPDX-License-Identifier: MIT
#pragma once
// The timed call patterns both benchmarks use, for a registered no-argument
// function `fn` (each benchmark registers its own no-op).
#include <procpool/procpool.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "bench_util.hpp"

namespace bench {

// One blocking call at a time, `gap` apart (zero: back to back): µs each.
inline std::vector<double> blocking_round_trips(procpool::ProcessPool& pool, void (*fn)(), int count,
                                                std::chrono::microseconds gap = {}) {
  std::vector<double> us;
  us.reserve(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    if (gap.count()) std::this_thread::sleep_for(gap);
    auto t0 = Clock::now();
    pool.submit(fn).get();
    us.push_back(micros(Clock::now() - t0));
  }
  return us;
}

// The same through concurrent.futures' blocking wait (FIRST_COMPLETED) on
// the one future, as a caller waiting on several would: µs each.
inline std::vector<double> waited_round_trips(procpool::ProcessPool& pool, void (*fn)(), int count) {
  std::vector<double> us;
  us.reserve(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    auto t0 = Clock::now();
    auto [done, pending] = procpool::futures::wait(std::vector{pool.submit(fn)}, procpool::FIRST_COMPLETED);
    done.at(0).get();
    us.push_back(micros(Clock::now() - t0));
  }
  return us;
}

// One awaited call at a time inside one task, timed in the coroutine: µs each.
inline procpool::Task<std::vector<double>> awaited_round_trips(procpool::EventLoop& loop, procpool::ProcessPool& pool,
                                                               void (*fn)(), int count) {
  std::vector<double> us;
  us.reserve(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    auto t0 = Clock::now();
    co_await loop.run_in_executor(pool, fn);
    us.push_back(micros(Clock::now() - t0));
  }
  co_return us;
}

// `count` calls submitted, then each get(): tasks/s.
inline double submit_all_then_get(procpool::ProcessPool& pool, void (*fn)(), int count) {
  std::vector<procpool::Future<void>> futures;
  futures.reserve(static_cast<size_t>(count));
  auto t0 = Clock::now();
  for (int i = 0; i < count; ++i) futures.push_back(pool.submit(fn));
  for (auto& f : futures) f.get();
  return count / (micros(Clock::now() - t0) / 1e6);
}

// `count` calls submitted from a coroutine, then co_await gather(futures):
// seconds from the first submit to gather's return.
inline procpool::Task<double> gather_seconds(procpool::EventLoop& loop, procpool::ProcessPool& pool, void (*fn)(),
                                             int count) {
  std::vector<procpool::Future<void>> futures;
  futures.reserve(static_cast<size_t>(count));
  auto t0 = Clock::now();
  for (int i = 0; i < count; ++i) futures.push_back(loop.run_in_executor(pool, fn));
  auto results = co_await procpool::gather(std::move(futures));
  double s = micros(Clock::now() - t0) / 1e6;
  if (results.size() != static_cast<size_t>(count)) {
    std::fprintf(stderr, "gather gave %zu results instead of %d\n", results.size(), count);
    std::exit(1);
  }
  co_return s;
}

}  // namespace bench
