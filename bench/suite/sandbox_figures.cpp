// SPDX-License-Identifier: MIT
// What the sandbox costs (PoolOptions::sandbox = Sandbox::compute_only()):
// the hot no-op round trip, and a 2-worker pool's start-up, each measured
// interleaved with the same thing unsandboxed in this process, as
// supervision_cost does for deadlines. Both on forkserver workers, the
// start method a sandboxed pool gets by default, so that only the sandbox
// differs.
#include <procpool/procpool.hpp>

#include <optional>
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

procpool::PoolOptions options(bool sandboxed, size_t workers) {
  procpool::PoolOptions o;
  o.workers = workers;
  o.start_method = procpool::StartMethod::forkserver;
  if (sandboxed) o.sandbox = procpool::Sandbox::compute_only();
  return o;
}

// Blocking no-op round trips, worker hot: interleaved batches on a plain
// and a sandboxed pool (both alive throughout), the median of each's
// batch means. The seccomp filter runs on every syscall the worker makes:
// a hot worker makes few (it spins before it sleeps on its futex).
void round_trips(int round, int calls) {
  procpool::ProcessPool plain(options(false, 1)), sandboxed(options(true, 1));
  constexpr int kBatches = 7;
  for (int i = 0; i < calls / 10; ++i) {
    plain.submit(sandboxed_noop).get();
    sandboxed.submit(sandboxed_noop).get();
  }
  auto batch = [&](procpool::ProcessPool& pool) {
    auto t0 = Clock::now();
    for (int i = 0; i < calls; ++i) pool.submit(sandboxed_noop).get();
    return micros(Clock::now() - t0) / calls;
  };
  std::vector<double> none, compute_only;
  for (int b = 0; b < kBatches; ++b) {
    none.push_back(batch(plain));
    compute_only.push_back(batch(sandboxed));
  }
  emit(kSystem, "sandbox_rtt", "none", round, median(none));
  emit(kSystem, "sandbox_rtt", "compute_only", round, median(compute_only));
}

// A fresh 2-worker pool from its constructor to the first no-op's result,
// alternately plain and sandboxed (the sandboxed worker builds and installs
// its filter before it takes the call).
void startups(int round, int samples) {
  std::vector<double> none, compute_only;
  for (int s = 0; s < samples; ++s)
    for (bool sandboxed : {s % 2 == 0, s % 2 != 0}) {
      std::optional<procpool::ProcessPool> pool;
      auto t0 = Clock::now();
      pool.emplace(options(sandboxed, 2));
      pool->submit(sandboxed_noop).get();
      (sandboxed ? compute_only : none).push_back(millis(Clock::now() - t0));
    }
  emit(kSystem, "sandbox_startup", "none", round, median(none));
  emit(kSystem, "sandbox_startup", "compute_only", round, median(compute_only));
}

}  // namespace

void measure_sandbox_cost(int round, bool quick) {
  round_trips(round, quick ? 1000 : 5000);
  startups(round, quick ? 2 : 10);
}

}  // namespace bench
