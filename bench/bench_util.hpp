// SPDX-License-Identifier: MIT
#pragma once
// Small helpers for the benchmarks: a clock, order statistics, and a table
// printer for "median [min–max] vs target vs Python" rows.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

namespace bench {

using Clock = std::chrono::steady_clock;

inline double micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }
inline double millis(Clock::duration d) { return micros(d) / 1e3; }

// The p-th percentile (0 < p <= 1) of a sample, nearest-rank method.
inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto rank = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}
inline double median(const std::vector<double>& v) { return percentile(v, 0.5); }

// One figure: a value per round, summarised as median [min–max].
struct Figure {
  std::string name;
  std::string unit;
  std::vector<double> rounds;
  // Target: the value must be <= (lower_is_better) or >= target; 0 = none.
  double target = 0;
  bool lower_is_better = true;
  // Python 3.11 ProcessPoolExecutor reference (DESIGN.md); 0 = none.
  double python = 0;

  double med() const { return median(rounds); }
  double min() const { return rounds.empty() ? 0 : *std::min_element(rounds.begin(), rounds.end()); }
  double max() const { return rounds.empty() ? 0 : *std::max_element(rounds.begin(), rounds.end()); }
};

// Formats a value with a precision that suits its magnitude.
inline std::string fmt(double v) {
  char buf[64];
  double a = std::fabs(v);
  if (a >= 1e6) std::snprintf(buf, sizeof buf, "%.0f", v);
  else if (a >= 100) std::snprintf(buf, sizeof buf, "%.0f", v);
  else if (a >= 10) std::snprintf(buf, sizeof buf, "%.1f", v);
  else std::snprintf(buf, sizeof buf, "%.2f", v);
  std::string s = buf;
  if (a < 10000 || s.find('.') != std::string::npos) return s;
  // Thousands separators for big integers (built by appending: g++ 12 gives
  // a false -Wrestrict warning for std::string::insert).
  std::string out;
  size_t digits = s.size() - (v < 0 ? 1 : 0);
  for (size_t i = 0; i < s.size(); ++i) {
    out += s[i];
    size_t left = s.size() - i - 1;
    if (s[i] != '-' && left > 0 && left % 3 == 0 && left < digits) out += ',';
  }
  return out;
}

inline void print_table(const std::vector<Figure>& figures, int rounds) {
  std::printf("\n%-38s %12s %-23s %-8s %-16s %-10s %s\n", "figure", "median", "spread (min-max)", "unit", "target",
              "Python", "procpool/Python");
  std::printf("%s\n", std::string(130, '-').c_str());
  for (const Figure& f : figures) {
    std::string spread = fmt(f.min()) + " - " + fmt(f.max());
    std::string target = "-";
    if (f.target > 0) {
      bool ok = f.lower_is_better ? f.med() <= f.target : f.med() >= f.target;
      target = std::string(f.lower_is_better ? "<= " : ">= ") + fmt(f.target) + (ok ? " ok" : " MISS");
    }
    std::string python = f.python > 0 ? fmt(f.python) : "-";
    std::string ratio = "-";
    if (f.python > 0 && f.med() > 0) {
      double r = f.med() / f.python;
      double better = f.lower_is_better ? 1 / r : r;
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.3g (%.3gx %s)", r, better >= 1 ? better : 1 / better,
                    better >= 1 ? "better" : "worse");
      ratio = buf;
    }
    std::printf("%-38s %12s %-23s %-8s %-16s %-10s %s\n", f.name.c_str(), fmt(f.med()).c_str(), spread.c_str(),
                f.unit.c_str(), target.c_str(), python.c_str(), ratio.c_str());
  }
  std::printf("(median of %d round%s; spread = min-max over rounds; MB = 10^6 bytes, GB = 10^9)\n", rounds,
              rounds == 1 ? "" : "s");
}

// The options every benchmark takes: --rounds N, --quick, --help. Returns
// an exit code when the program should end now (help printed, bad option).
inline std::optional<int> parse_options(int argc, char** argv, int& rounds, bool& quick) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--quick") {
      quick = true;
    } else if (arg == "--rounds") {
      rounds = i + 1 < argc ? std::atoi(argv[++i]) : 0;
      if (rounds < 1) {
        std::fprintf(stderr, "%s: --rounds needs a positive number\n", argv[0]);
        return 2;
      }
    } else if (arg == "-h" || arg == "--help") {
      std::printf(
          "Usage: %s [--rounds N] [--quick]\n"
          "  --rounds N  rounds per figure (default 5); each figure is the median over rounds\n"
          "  --quick     one tiny round of everything (a smoke test of a few seconds)\n",
          argv[0]);
      return 0;
    } else {
      std::fprintf(stderr, "%s: unknown option '%s' (try --help)\n", argv[0], arg.c_str());
      return 2;
    }
  }
  return std::nullopt;
}

}  // namespace bench
