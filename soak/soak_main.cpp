// SPDX-License-Identifier: MIT
// procpool_soak: a million calls under faults (README.md, "Soak").
#include <malloc.h>

#include <cstdio>
#include <exception>

#include <procpool/procpool.hpp>

#include "soak_options.hpp"
#include "soak_run.hpp"
#include "violations.hpp"

int main(int argc, char** argv) {
  procpool::init(argc, argv);  // first: the forkserver's zygote is a copy of this moment
  int exit_code = 0;
  auto options = soak::parse_options(argc, argv, exit_code);
  if (!options) return exit_code;
  // A fixed threshold: glibc's moving one would keep freed multi-MiB
  // payloads in the heap, and the RSS curve would measure that, not leaks.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  soak::Violations violations;
  soak::SoakReport report;
  try {
    report = soak::run_soak(*options, violations);
  } catch (const std::exception& e) {
    violations.add(std::string("the soak stopped: ") + e.what());
  }
  std::printf("soak: %s\n", report.curve.c_str());
  for (const std::string& what : violations.kept()) std::printf("soak: violation: %s\n", what.c_str());
  if (violations.count() > soak::Violations::kKept)
    std::printf("soak: ... and %zu more violations\n", violations.count() - soak::Violations::kKept);
  bool passed = violations.count() == 0;
  std::printf("soak: %s %s\n", passed ? "PASS" : "FAIL", report.summary.c_str());
  return passed ? 0 : 1;
}
