// SPDX-License-Identifier: MIT
#pragma once
// What a run leaves in the results folder: records.tsv (every value of
// every round), latest.md (targets, then every figure with its spread and
// its ratio to procpool) and the PNG plots.
#include <string>

#include "driver.hpp"

namespace bench {

struct ReportContext {
  std::string out_dir;  // bench/results
  std::string raw_dir;  // raw samples and plot data
  std::string command;  // how the run was started, for the reader
  std::string python;   // interpreter used, "" if none
  int rounds = 0;
  bool quick = false;
};

// Writes records.tsv and latest.md; returns the number of targets measured
// and missed.
int write_report(const SuiteResults& results, const ReportContext& context);

// Writes the plot data and a gnuplot script into raw_dir and runs gnuplot
// (if installed) to make the PNGs in out_dir; returns false, saying why on
// stderr, if no plots could be made.
bool write_plots(const SuiteResults& results, const ReportContext& context);

}  // namespace bench
