// SPDX-License-Identifier: MIT
#pragma once
// The soak itself: epochs of `rebuild_every` calls, each on a fresh pool
// shut down at its end (every other one with cancel_futures), each checked
// call by call once its pool is gone; then the leak and RSS checks.
#include <cstdint>
#include <string>

#include "soak_options.hpp"

namespace soak {

class Violations;

struct SoakReport {
  std::string summary;  // the one line
  std::string curve;    // the RSS curve
  bool passed = false;
};

SoakReport run_soak(const SoakOptions& options, Violations& violations);

}  // namespace soak
