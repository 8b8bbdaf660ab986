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

// In a worker, its own segment; null in the host. Lets the test suite's
// misbehaving tasks forge frames the way a buggy or hostile worker would.
WorkerSegment* current_worker_segment() noexcept;
// In a worker, its end of the SharedBytes channel (handle_channel.hpp); -1
// in the host. For the same tests.
int current_handle_socket() noexcept;
// In a worker, rings the host's doorbell as a response would.
void ring_host_doorbell() noexcept;

}  // namespace procpool::detail
