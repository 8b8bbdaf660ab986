// SPDX-License-Identifier: MIT
#pragma once
#include "system.hpp"

namespace bench {

// sandbox_rtt, sandbox_startup (figures.hpp), per profile and without one:
// one round of the sandbox group.
void measure_sandbox_cost(const RoundOptions& options);

}  // namespace bench
