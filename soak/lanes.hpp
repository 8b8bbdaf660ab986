// SPDX-License-Identifier: MIT
#pragma once
// The soak's submitters for one epoch: threads that submit draws of the
// fault plan with at most `window` calls of their own unsettled, and the
// event loop's thread, whose task makes calls with run_in_executor in
// batches and co_awaits each.
#include <cstdint>
#include <semaphore>

#include "fault_plan.hpp"

namespace soak {

class CallBook;
class CallMaker;
class Violations;

// Until the epoch's ids run out. `window` (owned by the caller, released by
// the calls' callbacks) must outlive the pool.
void run_thread_lane(CallBook& book, CallMaker& maker, std::counting_semaphore<>& window, FaultPlan plan,
                     Violations& violations);
void run_loop_lane(CallBook& book, CallMaker& maker, FaultPlan plan, Violations& violations);

}  // namespace soak
