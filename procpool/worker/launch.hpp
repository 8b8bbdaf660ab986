// SPDX-License-Identifier: MIT
#pragma once
// What a worker that is not the host's fork (StartMethod::forkserver,
// spawn) is sent in place of what a forked one inherits: its WorkerConfig
// (the initializer's bytes and the sandbox by value, not pointers into the
// host), its segment as a memfd, and its descriptors (doorbell, SharedBytes
// channel, output pipes), as one message on a unix stream socket:
//
//   LaunchHeader, with the descriptors attached (SCM_RIGHTS)
//   body_bytes of the encoded config
//
// The zygote passes the message on to the worker it forks without reading
// the body; a spawned worker reads it from its bootstrap socket.
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <vector>

#include <procpool/common/archive.hpp>
#include <procpool/common/unique_fd.hpp>
#include <procpool/sandbox/sandbox.hpp>
#include <procpool/worker/worker_config.hpp>

namespace procpool::detail {

class WorkerSegment;

inline constexpr uint32_t kLaunchMagic = 0x70704c31;  // "ppL1"
// A zygote's other message: fork a pool's sweeper (group_sweeper.hpp), whose
// pipe is its one descriptor; no body.
inline constexpr uint32_t kSweeperMagic = 0x70705331;  // "ppS1"
inline constexpr uint32_t kMaxLaunchFds = 5;
// A bound on what a reader accepts: the initializer's arguments are most
// of a body.
inline constexpr uint64_t kMaxLaunchBody = uint64_t{1} << 30;

struct LaunchHeader {
  uint32_t magic;
  uint32_t fd_count;
  uint64_t body_bytes;
};

// A launch message as read off the socket, not yet decoded.
struct LaunchMessage {
  LaunchHeader header{};
  std::vector<UniqueFd> fds;
  ByteBuffer body;
};

// Host: sends `config` and `segment` (a memfd segment) to `socket`.
// Throws procpool::Error naming what failed (a socket whose reader is gone
// among others).
void send_launch(int socket, const WorkerConfig& config, const WorkerSegment& segment);
// Host: asks the zygote on `socket` for a sweeper reading `channel`.
// Throws procpool::Error as send_launch does.
void send_sweeper_launch(int socket, int channel);
// Reads one message (a launch or a sweeper's); returns 0 or the errno (EPROTO for a malformed one;
// 0 with header.magic == 0 at end of stream). Blocks.
int read_launch(int socket, LaunchMessage& out) noexcept;

// A worker's decoded launch. Not movable: config points into it.
struct DecodedLaunch {
  DecodedLaunch() = default;
  DecodedLaunch(const DecodedLaunch&) = delete;
  DecodedLaunch& operator=(const DecodedLaunch&) = delete;

  WorkerConfig config{};
  size_t ring_capacity = 0;
  pid_t host = 0;
  UniqueFd segment;
  std::vector<UniqueFd> kept;  // the descriptors config names
  std::optional<ByteBuffer> initializer;
  std::optional<Sandbox> sandbox;
};
// Decodes a message into `out`. Returns null, or what went wrong.
const char* decode_launch(LaunchMessage& message, DecodedLaunch& out) noexcept;

}  // namespace procpool::detail
