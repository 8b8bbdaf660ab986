// SPDX-License-Identifier: MIT
#pragma once
// One message from a unix socket whose receiving end has SO_PASSCRED set,
// with the pid of the process that sent it, which the kernel attaches and
// the sender cannot forge. Async-signal-safe (a recvmsg and a copy): the
// pid namespace's keeper and the pool's sweeper call it in processes
// forked from hosts with threads.
#include <sys/types.h>

#include <cstddef>

namespace procpool::detail {

struct Received {
  ssize_t bytes;   // what recvmsg returned: -1 with errno set, 0 at end of stream
  pid_t sender;    // 0 if no credentials came with it
  bool truncated;  // the message, or its control data, did not fit
};
Received receive_with_sender(int socket, void* data, size_t size, int flags) noexcept;

}  // namespace procpool::detail
