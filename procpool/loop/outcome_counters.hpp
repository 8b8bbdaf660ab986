// SPDX-License-Identifier: MIT
#pragma once
// Calls counted by how they settled: PoolStats' submitted and outcome
// fields, for every pool that reports them (ProcessPool's core, and
// procpool::mpi::MpiPool). Relaxed atomics: each is a count on its own,
// read with no claim to be one consistent snapshot.
#include <atomic>
#include <cstdint>

#include <procpool/loop/pool_stats.hpp>

namespace procpool::detail {

class StateBase;

struct OutcomeCounters {
  std::atomic<uint64_t> submitted{0}, succeeded{0}, raised{0}, crashed{0}, timed_out{0}, cancelled{0},
      protocol_errors{0}, limit_exceeded{0}, shut_down{0}, other_errors{0};

  // Counts a settled call under its outcome (its error's type).
  void count(const StateBase& state) noexcept;
  // Copies the counts into `stats`.
  void report(PoolStats& stats) const noexcept;
};

}  // namespace procpool::detail
