// SPDX-License-Identifier: MIT
#pragma once

namespace bench {

// sandbox_rtt, sandbox_startup (figures.hpp): one round.
void measure_sandbox_cost(int round, bool quick);

}  // namespace bench
