// SPDX-License-Identifier: MIT
#pragma once
// The start-methods group in the report: procpool's three start methods
// beside Python's, at each host heap, with ratios taken within this run;
// the bare fork of each measuring process; the sandbox's cost.
#include <string>

#include "summary.hpp"

namespace bench {

// Markdown tables, or "" when the group was not run.
std::string start_methods_markdown(const Summary& summary);
// The sandbox group's table (each profile against none), or "" when it
// was not measured.
std::string sandbox_markdown(const Summary& summary);

}  // namespace bench
