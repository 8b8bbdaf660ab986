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

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>
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

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "procpool sandbox cost: %s\n", what.c_str());
  std::exit(1);
}

// The profiles measured, each against "none", in the order of the report.
constexpr std::array<const char*, 3> kProfiles = {"none", "compute_only", "read_only_files"};

procpool::PoolOptions options(const char* profile, size_t workers) {
  procpool::PoolOptions o;
  o.workers = workers;
  o.start_method = procpool::StartMethod::forkserver;
  std::string p = profile;
  if (p == "compute_only") o.sandbox = procpool::Sandbox::compute_only();
  // One readable path, as a task reading its inputs from one directory.
  if (p == "read_only_files") o.sandbox = procpool::Sandbox::read_only_files({"/usr/share"});
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

}  // namespace

void measure_sandbox_cost(const RoundOptions& options) {
  try {
    round_trips(options.round, options.quick ? 1000 : 5000);
    startups(options.round, options.quick ? 2 : 10);
  } catch (const std::exception& e) {
    fail(e.what());
  }
}

}  // namespace bench
