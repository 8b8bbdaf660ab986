// SPDX-License-Identifier: MIT
#pragma once
// The systems this executable measures itself, one round per call, printing
// records (protocol.hpp) on stdout.
#include <string>
#include <vector>

namespace bench {

struct RoundOptions {
  int round = 1;
  bool quick = false;   // a smoke test: tiny counts, seconds in all
  std::string raw_dir;  // where raw latency samples go ("" = nowhere)
};

void measure_procpool(const RoundOptions& options);
// floor-spin, floor-futex, thread-pool and memcpy.
void measure_floor(const RoundOptions& options);
// procpool-fork, -forkserver, -spawn and procpool-host: the start-methods
// group (start_method_figures.cpp). The sandbox group's is in
// sandbox_figures.hpp.
void measure_start_methods(const RoundOptions& options);

// Facts of this process read from /proc.
size_t resident_bytes();           // RSS of this process
double proportional_kib(int pid);  // Pss of a process, KiB (0 if unreadable)

// The payload sizes of the echo figure, and timed repetitions of each.
struct PayloadSize {
  size_t bytes;
  int reps;
};
std::vector<PayloadSize> payload_sizes(bool quick);

}  // namespace bench
