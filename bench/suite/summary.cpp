// SPDX-License-Identifier: MIT
#include "summary.hpp"

#include <algorithm>

#include "../bench_util.hpp"

namespace bench {

Summary::Summary(const std::vector<Record>& records) {
  std::map<std::tuple<std::string, std::string, std::string>, std::vector<double>> values;
  for (const Record& r : records) values[{r.system, r.figure, r.param}].push_back(r.value);
  for (auto& [key, v] : values) {
    auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    stats_[key] = {bench::median(v), *lo, *hi, static_cast<int>(v.size())};
  }
}

std::optional<Stat> Summary::get(const std::string& system, const std::string& figure, const std::string& param) const {
  auto it = stats_.find({system, figure, param});
  if (it == stats_.end()) return std::nullopt;
  return it->second;
}

std::optional<double> Summary::median(const std::string& system, const std::string& figure,
                                      const std::string& param) const {
  auto stat = get(system, figure, param);
  if (!stat) return std::nullopt;
  return stat->median;
}

}  // namespace bench
