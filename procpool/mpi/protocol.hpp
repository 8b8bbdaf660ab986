// SPDX-License-Identifier: MIT
#pragma once
// What host and agents say to each other once started (after handshake.hpp),
// as frames (frame_channel.hpp):
//
//   host -> agent
//     Call, CallMany  the very frame a ProcessPool writes into a worker's
//                     ring (common/frame.hpp, loop/call_encoding.hpp),
//                     followed by the bytes of its SharedBytes
//                     (shared_bytes_section.hpp; as many as the header's
//                     `handles` says) and a CallTrailer (the call's
//                     options); the length counts both; task_id is the
//                     host's. The agent takes them off, runs the frame on
//                     its local pool with those options and SharedBytes
//                     of its own, and answers it, whatever happens, once.
//     Cancel          no payload; task_id: a call the host sent this agent
//                     and has settled with TaskCancelled (MpiPool's
//                     cancel()). The agent cancels it on its local pool as
//                     a local Future::cancel() would: withdrawn if its
//                     worker has not begun it, its worker stopped if it
//                     has (the host sends Cancel only for a call with
//                     cancel_running). The call is still answered, once
//                     (TaskCancelled, or its result if it was too late);
//                     the host drops that answer. A Cancel for a call
//                     already answered is ignored.
//     Stop            no payload: finish the calls in hand, answer them,
//                     say Stopped, exit (MPI_Finalize, exit status 0)
//   agent -> host
//     Value, Exception  payload: i32 pid of the worker that answered (0 if
//                     none did), then the worker's answer as it wrote it
//                     (a Value's cereal result; an Exception's records,
//                     exception_codec.hpp), or for the agent pool's own
//                     errors (WorkerCrashed, TaskTimeout, ...) their
//                     records (error_codecs.hpp: with the rank and host);
//                     then, when the header's `handles` has kMeasureUsage,
//                     the call's UsageTrailer (a measured call its worker
//                     answered); then, for a Value whose result holds
//                     SharedBytes (the count in `handles`), their bytes
//                     (shared_bytes_section.hpp).
//
//     Stopped         no payload, task_id 0: the agent's last frame,
//                     after every answer. The host waits for it from each
//                     agent it has not lost (at most agent_timeout) before
//                     MPI_Finalize: a Stop is then known to have arrived,
//                     whatever the transport, so procpool's frames need
//                     no fence in MPI_Finalize (async_mpi_finalize).
//     Alive           no payload, task_id 0: a heartbeat, every
//                     agent_timeout / 8 while the agent holds calls (or is
//                     receiving one), so that the host can tell a quiet
//                     agent from a lost one (MpiOptions::agent_timeout).
//
// The host checks every reply: a frame kind it can take, a task id it gave
// that agent and has not seen answered, a payload that holds the pid; what
// follows is decoded as a local worker's answer (loop/answer_decoder.hpp),
// a malformed one failing its call with ProtocolError.
#include <cstddef>
#include <cstdint>

#include <procpool/common/frame.hpp>

namespace procpool::mpi::detail {

// The kind of a Cancel frame: procpool/mpi's own, beside common/frame.hpp's.
inline constexpr auto kCancelFrame = static_cast<procpool::detail::FrameKind>(64);
inline constexpr auto kAliveFrame = static_cast<procpool::detail::FrameKind>(65);
inline constexpr auto kStoppedFrame = static_cast<procpool::detail::FrameKind>(66);

inline constexpr size_t kReplyPrefixBytes = sizeof(procpool::detail::FrameHeader) + sizeof(int32_t);

// A call's options (CallOptions) as they travel at the end of its frame;
// those the caller left unset take the agent pool's.
// The host always sets kHasCancelRunning (resolved against MpiOptions'
// agent_pool): it must know what a cancel() of the call will do.
struct CallTrailer {
  uint32_t timeout_ms;  // with kHasTimeout: 0 is "no deadline", as CallOptions says
  uint8_t flags;
  uint8_t reserved[3];
};
static_assert(sizeof(CallTrailer) == 8);
inline constexpr uint8_t kHasTimeout = 1, kHasCancelRunning = 2, kCancelRunning = 4, kHasMeasure = 8, kMeasure = 16;

}  // namespace procpool::mpi::detail
