// SPDX-License-Identifier: MIT
#include <procpool/common/sender_pid.hpp>

#include <sys/socket.h>

#include <cstring>

namespace procpool::detail {

Received receive_with_sender(int socket, void* data, size_t size, int flags) noexcept {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))] = {};
  iovec iov{data, size};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  Received out{::recvmsg(socket, &msg, flags), 0, false};
  if (out.bytes <= 0) return out;
  out.truncated = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_CREDENTIALS) continue;
    ucred cred;
    std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
    out.sender = cred.pid;
  }
  return out;
}

}  // namespace procpool::detail
