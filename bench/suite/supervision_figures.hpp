// SPDX-License-Identifier: MIT
#pragma once

namespace bench {

// deadline_fail, deadline_replace, cancel_running_settle,
// cancel_running_replace, supervision_rtt, recycle_throughput (figures.hpp):
// one round.
void measure_supervision(int round, bool quick);

}  // namespace bench
