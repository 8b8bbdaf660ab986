// SPDX-License-Identifier: MIT
#include <unistd.h>

#include <fstream>
#include <string>

#include "system.hpp"

namespace bench {

size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  size_t total_pages = 0, resident_pages = 0;
  statm >> total_pages >> resident_pages;
  return resident_pages * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

double proportional_kib(int pid) {
  std::ifstream rollup("/proc/" + std::to_string(pid) + "/smaps_rollup");
  std::string key;
  while (rollup >> key) {
    if (key == "Pss:") {
      double kib = 0;
      rollup >> kib;
      return kib;
    }
    rollup.ignore(1 << 20, '\n');
  }
  return 0;
}

std::vector<PayloadSize> payload_sizes(bool quick) {
  constexpr size_t kKiB = 1024, kMiB = kKiB * kKiB;
  if (quick) return {{64, 20}, {4 * kKiB, 20}, {64 * kKiB, 10}, {kMiB, 3}};
  return {{64, 2000}, {4 * kKiB, 2000}, {64 * kKiB, 500}, {kMiB, 100}, {64 * kMiB, 5}};
}

}  // namespace bench
