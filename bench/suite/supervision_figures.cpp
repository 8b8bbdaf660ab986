// SPDX-License-Identifier: MIT
// The supervisor's figures (issue 13): how soon a call past its deadline, or
// a running call cancelled, has its worker replaced and serving again; and
// what supervision costs a call that never needs it.
#include <procpool/procpool.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "../bench_util.hpp"
#include "protocol.hpp"
#include "supervision_figures.hpp"

namespace {

// Runs until its worker is killed.
void spin_forever() {
  for (;;) asm volatile("");
}
PROCPOOL_REGISTER(spin_forever);

void supervised_noop() {}
PROCPOOL_REGISTER(supervised_noop);

}  // namespace

namespace bench {
namespace {

constexpr const char* kSystem = "procpool";

// One worker, so that only its replacement can serve the call behind.
// deadline_fail: from the deadline (submit + timeout: the worker is idle,
// so it may begin the call at once) to the future failing with
// TaskTimeout; deadline_replace: to the next call's result. With the
// pool's spare (the default), which takes the slot, and with none, when
// the replacement is forked.
void deadlines(int round, int samples, size_t spares) {
  constexpr auto kTimeout = std::chrono::milliseconds(20);
  std::vector<double> fail_ms, replace_ms;
  procpool::ProcessPool pool({.workers = 1, .spare_workers = spares});
  pool.submit(supervised_noop).get();
  for (int s = 0; s < samples; ++s) {
    auto t0 = Clock::now();
    auto doomed = pool.submit_with({.timeout = kTimeout}, spin_forever);
    auto next = pool.submit(supervised_noop);
    try {
      doomed.get();
    } catch (const procpool::TaskTimeout&) {
    }
    auto failed = Clock::now();
    next.get();
    auto due = t0 + kTimeout;
    fail_ms.push_back(millis(failed - due));
    replace_ms.push_back(millis(Clock::now() - due));
  }
  if (spares == 0) return emit(kSystem, "deadline_replace", "no_spare", round, median(replace_ms));
  emit(kSystem, "deadline_fail", "1", round, median(fail_ms));
  emit(kSystem, "deadline_replace", "1", round, median(replace_ms));
}

// cancel() of a call its worker runs: how long cancel() takes (the future is
// settled when it returns), and from it to the next call's result.
void cancels(int round, int samples) {
  std::vector<double> settle_us, replace_ms;
  procpool::ProcessPool pool({.workers = 1});
  pool.submit(supervised_noop).get();
  for (int s = 0; s < samples; ++s) {
    auto running = pool.submit(spin_forever);
    auto next = pool.submit(supervised_noop);
    while (!running.running()) std::this_thread::yield();
    auto t0 = Clock::now();
    if (!running.cancel() || !running.ready()) {
      std::fprintf(stderr, "procpool: cancel() of a running call did not settle it\n");
      std::exit(1);
    }
    auto settled = Clock::now();
    next.get();
    settle_us.push_back(micros(settled - t0));
    replace_ms.push_back(millis(Clock::now() - t0));
  }
  emit(kSystem, "cancel_running_settle", "1", round, median(settle_us));
  emit(kSystem, "cancel_running_replace", "1", round, median(replace_ms));
}

// The hot blocking no-op round trip with no deadline and with one on every
// call (never reached): interleaved batches, the median of each.
void supervision_cost(int round, int calls) {
  procpool::ProcessPool pool({.workers = 1});
  constexpr int kBatches = 7;
  std::vector<double> plain, timed;
  for (int i = 0; i < calls / 10; ++i) pool.submit(supervised_noop).get();
  for (int b = 0; b < kBatches; ++b) {
    auto t0 = Clock::now();
    for (int i = 0; i < calls; ++i) pool.submit(supervised_noop).get();
    plain.push_back(micros(Clock::now() - t0) / calls);
    t0 = Clock::now();
    for (int i = 0; i < calls; ++i) pool.submit_with({.timeout = std::chrono::hours(1)}, supervised_noop).get();
    timed.push_back(micros(Clock::now() - t0) / calls);
  }
  emit(kSystem, "supervision_rtt", "none", round, median(plain));
  emit(kSystem, "supervision_rtt", "timeout", round, median(timed));
}

// No-ops submitted, then awaited, through 2 workers that each serve one
// call (max_tasks_per_child = 1): a fork per call, as Python's option.
void recycling(int round, int calls) {
  procpool::ProcessPool pool({.workers = 2, .max_tasks_per_child = 1});
  pool.submit(supervised_noop).get();
  std::vector<procpool::Future<void>> futures;
  auto t0 = Clock::now();
  for (int i = 0; i < calls; ++i) futures.push_back(pool.submit(supervised_noop));
  for (auto& f : futures) f.get();
  emit(kSystem, "recycle_throughput", "1", round, calls / (micros(Clock::now() - t0) / 1e6));
}

}  // namespace

void measure_supervision(int round, bool quick) {
  deadlines(round, quick ? 2 : 20, 1);
  deadlines(round, quick ? 2 : 20, 0);
  cancels(round, quick ? 2 : 20);
  supervision_cost(round, quick ? 2000 : 100000);
  recycling(round, quick ? 20 : 2000);
}

}  // namespace bench
