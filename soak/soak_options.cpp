// SPDX-License-Identifier: MIT
#include "soak_options.hpp"

#include "fault_plan.hpp"

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

namespace soak {
namespace {

constexpr const char* kUsage =
    "Usage: procpool_soak [--calls N] [--seconds S] [--threads T] [--workers W]\n"
    "                     [--start-method fork|forkserver|spawn] [--seed N] [--rebuild-every N]\n"
    "                     [--rss-bound-mib M] [--window N] [--max-pending N] [--hostile P]\n"
    "Runs N calls (default 1000000; or until S seconds pass) from T submitting threads (4) and an\n"
    "event loop on a pool of W workers (4), with seeded random faults, rebuilding the pool every\n"
    "N calls (100000); checks that every future settles once with the outcome its fault implies,\n"
    "that no call runs twice or is lost, that nothing leaks, and that RSS stays within M MiB (48)\n"
    "of its value after warm-up (20 %; PROCPOOL_SOAK_RSS_BOUND_MIB sets the default). Prints one\n"
    "summary line; exits 1 on any violation. --hostile P: calls per 100,000 whose worker forges\n"
    "1 to 64 frames into its response ring (100).\n";

uint64_t number(std::string_view name, const std::string& text) {
  size_t used = 0;
  unsigned long long value = std::stoull(text, &used);
  if (used != text.size()) throw std::invalid_argument(std::string(name) + ": not a number: " + text);
  return value;
}

}  // namespace

std::optional<SoakOptions> parse_options(int argc, char** argv, int& exit_code) {
  SoakOptions o;
  try {
    if (const char* bound = std::getenv("PROCPOOL_SOAK_RSS_BOUND_MIB"))
      o.rss_bound_mib = number("PROCPOOL_SOAK_RSS_BOUND_MIB", bound);
    for (int i = 1; i < argc; ++i) {
      std::string_view arg = argv[i];
      if (arg == "-h" || arg == "--help") {
        std::fputs(kUsage, stdout);
        exit_code = 0;
        return std::nullopt;
      }
      std::string name(arg), value;
      if (size_t eq = arg.find('='); eq != std::string_view::npos) {
        name = arg.substr(0, eq);
        value = arg.substr(eq + 1);
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        throw std::invalid_argument(name + " needs a value");
      }
      if (name == "--calls") o.calls = number(name, value);
      else if (name == "--seconds") o.seconds = std::stod(value);
      else if (name == "--threads") o.threads = static_cast<unsigned>(number(name, value));
      else if (name == "--workers") o.workers = number(name, value);
      else if (name == "--seed") o.seed = number(name, value);
      else if (name == "--rebuild-every") o.rebuild_every = number(name, value);
      else if (name == "--rss-bound-mib") o.rss_bound_mib = number(name, value);
      else if (name == "--window") o.window = static_cast<unsigned>(number(name, value));
      else if (name == "--max-pending") o.max_pending = number(name, value);
      else if (name == "--hostile") {
        o.hostile_per_100k = static_cast<uint32_t>(number(name, value));
        if (o.hostile_per_100k > 100'000 - kFixedFaultsPer100k)
          throw std::invalid_argument("--hostile: at most " + std::to_string(100'000 - kFixedFaultsPer100k) +
                                      " per 100,000 (the other faults take the rest)");
      } else if (name == "--start-method") {
        if (value == "fork") o.start_method = procpool::StartMethod::fork;
        else if (value == "forkserver") o.start_method = procpool::StartMethod::forkserver;
        else if (value == "spawn") o.start_method = procpool::StartMethod::spawn;
        else throw std::invalid_argument("unknown start method: " + value);
      } else {
        throw std::invalid_argument("unknown option: " + name);
      }
    }
    if (o.calls == 0 || o.calls > UINT32_MAX || o.rebuild_every == 0 || o.window == 0 || o.workers == 0)
      throw std::invalid_argument(
          "--calls (at most 2^32 - 1), --rebuild-every, --window and --workers must be positive");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "procpool_soak: %s\n%s", e.what(), kUsage);
    exit_code = 2;
    return std::nullopt;
  }
  return o;
}

}  // namespace soak
