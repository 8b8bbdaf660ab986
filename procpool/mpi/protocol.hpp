// SPDX-License-Identifier: MIT
#pragma once
// What host and agents say to each other once started (after handshake.hpp),
// as frames (frame_channel.hpp):
//
//   host -> agent
//     Call, CallMany  the very frame a ProcessPool writes into a worker's
//                     ring (common/frame.hpp, loop/call_encoding.hpp);
//                     task_id is the host's. The agent runs it on its
//                     local pool and answers it, whatever happens, once.
//     Stop            no payload: finish the calls in hand, answer them,
//                     exit (MPI_Finalize, exit status 0)
//   agent -> host
//     Value, Exception  payload: i32 pid of the worker that answered (0 if
//                     none did), then the worker's answer as it wrote it
//                     (a Value's cereal result; an Exception's records,
//                     exception_codec.hpp), or for the agent pool's own
//                     errors (WorkerCrashed, TaskTimeout, ...) their
//                     records (error_codecs.hpp: with the rank and host).
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

}  // namespace procpool::mpi::detail
