// SPDX-License-Identifier: MIT
#pragma once
// What host and agents say to each other once started (after handshake.hpp),
// as frames (frame_channel.hpp):
//
//   host -> agent
//     Call, CallMany  the very frame a ProcessPool writes into a worker's
//                     ring (common/frame.hpp, loop/call_encoding.hpp),
//                     followed by a CallTrailer (the call's options; the
//                     length counts it); task_id is the host's. The agent
//                     takes the trailer off, runs the frame on its local
//                     pool with those options and answers it, whatever
//                     happens, once.
//     Stop            no payload: finish the calls in hand, answer them,
//                     exit (MPI_Finalize, exit status 0)
//   agent -> host
//     Value, Exception  payload: i32 pid of the worker that answered (0 if
//                     none did), then the worker's answer as it wrote it
//                     (a Value's cereal result; an Exception's records,
//                     exception_codec.hpp), or for the agent pool's own
//                     errors (WorkerCrashed, TaskTimeout, ...) their
//                     records (error_codecs.hpp: with the rank and host);
//                     then, when the header's `handles` has kMeasureUsage,
//                     the call's UsageTrailer (a measured call its worker
//                     answered).
//
// The host checks every reply: a frame kind it can take, a task id it gave
// that agent and has not seen answered, a payload that holds the pid; what
// follows is decoded as a local worker's answer (loop/answer_decoder.hpp),
// a malformed one failing its call with ProtocolError.
#include <cstddef>
#include <cstdint>

#include <procpool/common/frame.hpp>

namespace procpool::mpi::detail {

inline constexpr size_t kReplyPrefixBytes = sizeof(procpool::detail::FrameHeader) + sizeof(int32_t);

// A call's options (CallOptions) as they travel at the end of its frame;
// those the caller left unset take the agent pool's.
struct CallTrailer {
  uint32_t timeout_ms;  // with kHasTimeout: 0 is "no deadline", as CallOptions says
  uint8_t flags;
  uint8_t reserved[3];
};
static_assert(sizeof(CallTrailer) == 8);
inline constexpr uint8_t kHasTimeout = 1, kHasCancelRunning = 2, kCancelRunning = 4, kHasMeasure = 8, kMeasure = 16;

}  // namespace procpool::mpi::detail
