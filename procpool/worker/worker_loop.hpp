// SPDX-License-Identifier: MIT
#pragma once
#include <procpool/common/worker_segment.hpp>
#include <procpool/worker/worker_config.hpp>

namespace procpool::detail {

// The worker's whole life after fork: read a Call from the request ring,
// mark it started, run it, write its Value or Exception to the response
// ring, ring the host's doorbell if the host sleeps. Returns never: exits
// with 0 on a Stop frame, kExitProtocol on a malformed request.
[[noreturn]] void run_worker(WorkerSegment& segment, const WorkerConfig& config);

}  // namespace procpool::detail
