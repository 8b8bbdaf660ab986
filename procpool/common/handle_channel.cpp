// SPDX-License-Identifier: MIT
#include <procpool/common/handle_channel.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <procpool/common/errno_text.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/common/shared_bytes.hpp>

namespace procpool::detail {
namespace {

// Room for the most descriptors one message can carry (the kernel's
// SCM_MAX_FD), not only the most a frame may: a sender that sends more is
// caught by the count, and MSG_CTRUNC then only means this process is out
// of descriptors.
constexpr size_t kMaxDescriptorsPerMessage = 253;
union ControlBuffer {
  char bytes[CMSG_SPACE(sizeof(int) * kMaxDescriptorsPerMessage)];
  cmsghdr align;
};

}  // namespace

HandleSockets make_handle_sockets() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0)
    throw Error(std::string("cannot start a worker: socketpair: ") + detail::errno_text(errno));
  int flags = ::fcntl(fds[0], F_GETFL);
  if (flags < 0 || ::fcntl(fds[0], F_SETFL, flags | O_NONBLOCK) != 0) {
    int err = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    throw Error(std::string("cannot start a worker: fcntl(O_NONBLOCK): ") + detail::errno_text(err));
  }
  return {fds[0], fds[1]};
}

int send_handles(int socket, TaskId task, const HandleList& handles) noexcept {
  if (handles.empty() || handles.size() > kMaxHandlesPerFrame) return EINVAL;
  ControlBuffer control{};
  iovec iov{&task, sizeof task};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.bytes;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * handles.size());
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * handles.size());
  for (size_t i = 0; i < handles.size(); ++i) {
    int fd = handles[i]->fd();
    std::memcpy(CMSG_DATA(c) + i * sizeof(int), &fd, sizeof fd);
  }
  for (;;) {
    if (::sendmsg(socket, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) return 0;
    if (errno != EINTR) return errno;
  }
}

HandleList receive_handles(int socket, TaskId task, size_t count, size_t max_size) {
  ControlBuffer control{};
  TaskId tag = 0;
  iovec iov{&tag, sizeof tag};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.bytes;
  msg.msg_controllen = sizeof control.bytes;
  ssize_t got;
  // ECONNRESET: the worker died (or closed its end) with messages of ours
  // unread. The kernel reports that once, ahead of the messages it had sent
  // before, which are still queued: read again (a worker killed just after
  // answering with a SharedBytes, its next calls' buffers unread, used to
  // have that answer fail as its ProtocolError).
  bool reset_seen = false;
  for (;;) {
    got = ::recvmsg(socket, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (got >= 0 || errno == EINTR) {
      if (got >= 0) break;
      continue;
    }
    if (errno != ECONNRESET || reset_seen) break;
    reset_seen = true;
  }
  if (got < 0)
    throw DecodeError("a frame with " + std::to_string(count) + " shared buffers whose descriptors never came (" +
                      detail::errno_text(errno) + ")");

  // Take ownership of every descriptor that arrived before judging them.
  std::vector<int> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds.push_back(fd);
    }
  }
  struct Closer {
    std::vector<int>& fds;
    size_t from = 0;
    ~Closer() {
      for (size_t i = from; i < fds.size(); ++i) ::close(fds[i]);
    }
  } closer{fds};

  if (msg.msg_flags & MSG_CTRUNC)
    throw Error("could not take the " + std::to_string(count) +
                " descriptors of a call's shared buffers: this process is out of descriptors");
  if (static_cast<size_t>(got) != sizeof tag || tag != task)
    throw DecodeError("shared buffers out of step: expected those of task " + std::to_string(task));
  if (fds.size() != count)
    throw DecodeError(std::to_string(fds.size()) + " shared buffer descriptors for a frame that declared " +
                      std::to_string(count));
  HandleList handles;
  handles.reserve(count);
  while (closer.from < fds.size())
    handles.push_back(SealedMemory::adopt(fds[closer.from++], max_size));  // adopt owns it
  return handles;
}

}  // namespace procpool::detail
