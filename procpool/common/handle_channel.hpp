// SPDX-License-Identifier: MIT
#pragma once
// The descriptors of a frame's SharedBytes travel beside it, over a
// SOCK_SEQPACKET socket pair per worker: one message per frame that has
// any, sent before the frame is published, so its reader finds them
// waiting when it reads the frame's header (FrameHeader::handles says how
// many). Each message is tagged with the frame's task id, which the reader
// checks: a message out of step with the frames is a protocol error.
//
// Trust: the host adopts a worker's descriptor only if it is a memfd sealed
// against writes and resizing (SealedMemory::adopt); anything else is the
// worker's ProtocolError.
#include <procpool/common/archive.hpp>
#include <procpool/common/frame.hpp>

namespace procpool::detail {

struct HandleSockets {
  int host;    // non-blocking; the host never waits on a worker
  int worker;  // for the worker, which closes the host's end
};
// Throws procpool::Error naming the syscall.
HandleSockets make_handle_sockets();

// Sends the descriptors of `handles` as one message tagged `task`.
// Returns 0, or the errno: EAGAIN when the socket is full (the reader has
// not yet taken the messages ahead; try again once it has).
int send_handles(int socket, TaskId task, const HandleList& handles) noexcept;

// Receives the next message: it must be tagged `task` and carry `count`
// descriptors, which are adopted (SealedMemory::adopt, at most max_size
// bytes each). Throws DecodeError for a message out of
// step or a descriptor that is not a sealed memfd (the sender broke the
// protocol), procpool::Error when this process could not take them (out of
// descriptors, or unable to map them). Whatever arrived is closed on failure.
HandleList receive_handles(int socket, TaskId task, size_t count, size_t max_size);

}  // namespace procpool::detail
