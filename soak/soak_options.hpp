// SPDX-License-Identifier: MIT
#pragma once
// procpool_soak's command line.
#include <cstdint>
#include <optional>
#include <string>

#include <procpool/procpool.hpp>

namespace soak {

struct SoakOptions {
  uint64_t calls = 1'000'000;
  double seconds = 0;  // 0: no time limit
  unsigned threads = 4;
  size_t workers = 4;
  procpool::StartMethod start_method = procpool::StartMethod::fork;
  uint64_t seed = 1;
  uint64_t rebuild_every = 100'000;
  uint64_t rss_bound_mib = 48;      // growth allowed after warm-up
  unsigned window = 256;            // unsettled calls per submitting thread
  size_t max_pending = 768;         // the pools' PoolOptions::max_pending
  uint32_t hostile_per_100k = 100;  // calls that forge frames, per 100,000
};

// Parses --name value or --name=value; on an error or --help returns
// nothing and sets `exit_code` (2 or 0) after printing to stderr or stdout.
std::optional<SoakOptions> parse_options(int argc, char** argv, int& exit_code);

}  // namespace soak
