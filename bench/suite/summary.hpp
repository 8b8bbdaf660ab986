// SPDX-License-Identifier: MIT
#pragma once
// Per-round records folded into one statistic per (system, figure, param):
// the median over rounds and the spread (min–max) around it.
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "protocol.hpp"

namespace bench {

struct Stat {
  double median = 0, min = 0, max = 0;
  int rounds = 0;
};

class Summary {
 public:
  explicit Summary(const std::vector<Record>& records);
  std::optional<Stat> get(const std::string& system, const std::string& figure, const std::string& param) const;
  // Median only, for targets and plots; nullopt if not measured.
  std::optional<double> median(const std::string& system, const std::string& figure, const std::string& param) const;

 private:
  std::map<std::tuple<std::string, std::string, std::string>, Stat> stats_;
};

}  // namespace bench
