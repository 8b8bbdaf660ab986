// SPDX-License-Identifier: MIT
#pragma once
// Runs every system's measuring program once per round, in interleaved
// rounds (the order rotates each round so that no system always runs first
// or last on a machine whose load drifts), and collects what they print.
#include <map>
#include <set>
#include <string>
#include <vector>

#include "protocol.hpp"

namespace bench {

// The groups of figures a run can be limited to (--group), each a set of
// measuring programs run every round.
inline constexpr const char* kCoreGroup = "core";                   // procpool, the floor, executor_bench.py
inline constexpr const char* kStartMethodsGroup = "start-methods";  // start_method_figures.cpp, start_methods.py
inline constexpr const char* kSandboxGroup = "sandbox";             // sandbox_figures.cpp
inline const std::set<std::string>& all_groups() {
  static const std::set<std::string> groups = {kCoreGroup, kStartMethodsGroup, kSandboxGroup};
  return groups;
}

struct SuiteOptions {
  int rounds = 3;
  bool quick = false;
  std::set<std::string> groups = all_groups();
  std::string self;        // this executable, which measures procpool and the floor
  std::string python;      // interpreter; "" = none found
  std::string python_dir;  // bench/python: executor_bench.py, start_methods.py
  std::string raw_dir;     // raw samples and plot data
};

struct SuiteResults {
  std::vector<Record> records;
  std::vector<Note> notes;
  std::map<std::string, std::string> skipped;  // system -> reason
  std::vector<std::string> failures;           // measuring programs that failed
  double seconds = 0;
};

SuiteResults run_suite(const SuiteOptions& options);

// Runs one measuring program (a shell command) and adds what it prints to
// `results`; its stderr passes through as progress. For programs that
// measure beside the suite (bench/mpi_bench.cpp).
void run_measuring_program(const std::string& system, const std::string& command, SuiteResults& results);
// The command that runs bench/python/executor_bench.py for `system`
// (python-ppe or python-loky) and one round, as the suite runs it.
std::string executor_bench_command(const SuiteOptions& options, const std::string& system, int round);

// The first interpreter among `python3` on PATH and Debian's own that can
// import loky (through joblib), else the first that runs at all, else "".
std::string find_python();

}  // namespace bench
