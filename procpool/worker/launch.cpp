// SPDX-License-Identifier: MIT
#include <procpool/worker/launch.hpp>

#include <cereal/types/chrono.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/vector.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <procpool/common/errno_text.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/common/function_registry.hpp>
#include <procpool/common/worker_segment.hpp>

namespace procpool {

// ADL finds it for the launch body (ResourceLimits is a plain aggregate).
template <class Archive>
void serialize(Archive& ar, ResourceLimits& l) {
  ar(l.memory, l.cpu, l.open_files, l.file_size, l.processes, l.core_dumps);
}

}  // namespace procpool

namespace procpool::detail {
namespace {

// The sandbox travels as what its public accessors say and is rebuilt
// through its public constructors: no serialisation hook in the user's type.
struct SandboxRecord {
  bool enabled = false;
  int otherwise_kind = 0;
  int otherwise_errno = 0;
  std::set<std::string> allowed;
  std::map<std::string, std::pair<int, int>> denied;
  std::vector<std::string> paths;
  std::vector<std::string> variables;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(enabled, otherwise_kind, otherwise_errno, allowed, denied, paths, variables);
  }
  static Sandbox::Action action(int kind, int error) noexcept {
    return kind == static_cast<int>(Sandbox::Action::Kind::error) ? Sandbox::Action::errno_(error)
                                                                  : Sandbox::Action::kill;
  }
  static SandboxRecord of(const Sandbox& s) {
    SandboxRecord r;
    r.enabled = s.enabled();
    r.otherwise_kind = static_cast<int>(s.otherwise().kind);
    r.otherwise_errno = s.otherwise().error_number;
    r.allowed = s.allowed();
    for (const auto& [name, a] : s.denied()) r.denied[name] = {static_cast<int>(a.kind), a.error_number};
    r.paths = s.readable_paths();
    r.variables = s.variables();
    return r;
  }
  Sandbox rebuild() const {
    Sandbox s = paths.empty() ? Sandbox::compute_only(action(otherwise_kind, otherwise_errno))
                              : Sandbox::read_only_files(paths, action(otherwise_kind, otherwise_errno));
    for (const auto& name : allowed) s.allow(name);
    for (const auto& [name, a] : denied) s.deny(name, action(a.first, a.second));
    s.environment(variables);
    return s;
  }
};

// Everything of a WorkerConfig but its descriptors, which travel beside.
template <class Archive, class Config, class Init, class Box>
void body(Archive& ar, uint64_t& capacity, int32_t& host, uint64_t& registry_size, uint64_t& registry_digest, Config& c,
          Init& initializer, Box& sandbox, bool& capture) {
  ar(capacity, host, registry_size, registry_digest);
  ar(c.max_message_bytes, c.spin, c.close_fds, c.output, c.max_calls, c.max_rss, c.limits, c.namespace_flags);
  ar(initializer, sandbox, capture);
}

int send_all(int socket, const void* data, size_t size, msghdr* first) noexcept {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    iovec iov{const_cast<char*>(p), size};
    msghdr plain{};
    msghdr* msg = first ? first : &plain;
    msg->msg_iov = &iov;
    msg->msg_iovlen = 1;
    ssize_t n = ::sendmsg(socket, msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    first = nullptr;  // the descriptors went with the first byte
    p += n;
    size -= static_cast<size_t>(n);
  }
  return 0;
}

int read_all(int socket, void* data, size_t size) noexcept {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    ssize_t n = ::recv(socket, p, size, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EPROTO;  // cut short
    p += n;
    size -= static_cast<size_t>(n);
  }
  return 0;
}

union FdControl {
  char bytes[CMSG_SPACE(sizeof(int) * kMaxLaunchFds)];
  cmsghdr align;
};

// The header, with `header.fd_count` descriptors attached.
int send_header(int socket, const LaunchHeader& header, const int* fds) noexcept {
  FdControl control{};
  msghdr msg{};
  msg.msg_control = control.bytes;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * header.fd_count);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * header.fd_count);
  std::memcpy(CMSG_DATA(c), fds, sizeof(int) * header.fd_count);
  return send_all(socket, &header, sizeof header, &msg);
}

}  // namespace

void send_launch(int socket, const WorkerConfig& config, const WorkerSegment& segment) {
  ByteBuffer bytes;
  {
    OutputArchive ar(bytes);
    uint64_t capacity = segment.capacity();
    int32_t host = ::getpid();
    uint64_t registry_size = FunctionRegistry::instance().size();
    uint64_t registry_digest = FunctionRegistry::instance().digest();
    std::optional<std::string> initializer;
    if (config.initializer)
      initializer.emplace(reinterpret_cast<const char*>(config.initializer->data()), config.initializer->size());
    std::optional<SandboxRecord> sandbox;
    if (config.sandbox) sandbox = SandboxRecord::of(*config.sandbox);
    bool capture = config.output == WorkerOutput::capture;
    WorkerConfig c = config;
    body(ar, capacity, host, registry_size, registry_digest, c, initializer, sandbox, capture);
  }
  std::vector<int> fds{segment.memfd(), config.doorbell_fd, config.handle_socket};
  if (config.output == WorkerOutput::capture) {
    fds.push_back(config.stdout_fd);
    fds.push_back(config.stderr_fd);
  }
  LaunchHeader header{kLaunchMagic, static_cast<uint32_t>(fds.size()), bytes.size()};
  int err = send_header(socket, header, fds.data());
  if (err == 0) err = send_all(socket, bytes.data(), bytes.size(), nullptr);
  if (err != 0) throw Error(std::string("cannot send a worker its set-up: sendmsg: ") + detail::errno_text(err));
}

void send_sweeper_launch(int socket, int channel) {
  LaunchHeader header{kSweeperMagic, 1, 0};
  if (int err = send_header(socket, header, &channel))
    throw Error(std::string("cannot ask for a sweeper: sendmsg: ") + detail::errno_text(err));
}

int read_launch(int socket, LaunchMessage& out) noexcept {
  FdControl control{};
  iovec iov{&out.header, sizeof out.header};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.bytes;
  msg.msg_controllen = sizeof control.bytes;
  ssize_t n;
  do n = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return errno;
  if (n == 0) {
    out.header.magic = 0;  // the sender is gone
    return 0;
  }
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      out.fds.emplace_back(fd);
    }
  }
  if (static_cast<size_t>(n) < sizeof out.header)
    if (int err =
            read_all(socket, reinterpret_cast<char*>(&out.header) + n, sizeof out.header - static_cast<size_t>(n)))
      return err;
  if (out.header.magic == kSweeperMagic)
    return (msg.msg_flags & MSG_CTRUNC) || out.header.fd_count != 1 || out.fds.size() != 1 || out.header.body_bytes != 0
               ? EPROTO
               : 0;
  if ((msg.msg_flags & MSG_CTRUNC) || out.header.magic != kLaunchMagic || out.header.fd_count != out.fds.size() ||
      out.header.fd_count < 3 || out.header.body_bytes > kMaxLaunchBody)
    return EPROTO;
  try {
    out.body.reserve(out.header.body_bytes);
  } catch (...) {
    return ENOMEM;
  }
  std::vector<char> chunk(size_t{64} * 1024);
  for (uint64_t left = out.header.body_bytes; left > 0;) {
    size_t take = static_cast<size_t>(std::min<uint64_t>(left, chunk.size()));
    if (int err = read_all(socket, chunk.data(), take)) return err;
    out.body.write(chunk.data(), take);
    left -= take;
  }
  return 0;
}

const char* decode_launch(LaunchMessage& message, DecodedLaunch& out) noexcept {
  try {
    InputArchive ar(message.body.data(), message.body.size());
    uint64_t capacity = 0, registry_size = 0, registry_digest = 0;
    int32_t host = 0;
    std::optional<std::string> initializer;
    std::optional<SandboxRecord> sandbox;
    bool capture = false;
    body(ar, capacity, host, registry_size, registry_digest, out.config, initializer, sandbox, capture);
    if (message.fds.size() != (capture ? 5u : 3u)) return "a launch message with the wrong descriptors";
    // The segment first: a refusal below is written into its control block.
    out.ring_capacity = static_cast<size_t>(capacity);
    out.host = host;
    out.segment = std::move(message.fds[0]);
    const FunctionRegistry& registry = FunctionRegistry::instance();
    if (registry_size != registry.size() || registry_digest != registry.digest())
      return "the worker's registered functions differ from the host's (a function registered after "
             "procpool::init(), or another worker program): function ids would not mean the same";
    out.config.doorbell_fd = message.fds[1].get();
    out.config.handle_socket = message.fds[2].get();
    if (capture) {
      out.config.stdout_fd = message.fds[3].get();
      out.config.stderr_fd = message.fds[4].get();
    }
    for (size_t i = 1; i < message.fds.size(); ++i) out.kept.push_back(std::move(message.fds[i]));
    if (initializer) {
      out.initializer.emplace();
      out.initializer->write(initializer->data(), initializer->size());
      out.config.initializer = &*out.initializer;
    }
    if (sandbox && sandbox->enabled) {
      out.sandbox.emplace(sandbox->rebuild());
      out.config.sandbox = &*out.sandbox;
    }
    return nullptr;
  } catch (...) {
    return "a launch message that does not decode";
  }
}

}  // namespace procpool::detail
