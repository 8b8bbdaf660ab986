// SPDX-License-Identifier: MIT
#pragma once
// Frames between ranks over MPI non-blocking point-to-point.
//
// A frame is a FrameHeader (common/frame.hpp) and `length` payload bytes,
// sent as MPI messages of MPI_BYTE with tag kFrameTag on procpool's own
// communicator (a duplicate of MPI_COMM_WORLD, so a program's own MPI
// traffic never matches ours): the first message holds the header and up
// to kChunkBytes - 24 bytes of payload, each later one the next kChunkBytes
// of it. MPI never lets two messages between the same pair of ranks, on
// the same tag and communicator, overtake each other, and a sender posts
// one frame's messages before the next frame's: so a receiver takes a
// peer's messages one at a time (MPI_Improbe on that peer, MPI_Imrecv
// straight into the frame's buffer) and they arrive whole and in order.
//
// Only the thread that owns a channel calls MPI through it (the host's
// link thread, an agent's main thread): MPI_THREAD_SERIALIZED suffices.
// Every MPI error is returned (MPI_ERRORS_RETURN) and thrown as MpiError.
#include <mpi.h>

#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include <procpool/common/archive.hpp>
#include <procpool/common/frame.hpp>

namespace procpool::mpi::detail {

using procpool::detail::ByteBuffer;
using procpool::detail::FrameHeader;

inline constexpr int kFrameTag = 1;
inline constexpr int kHelloTag = 2;  // the start-up handshake (handshake.hpp)
inline constexpr size_t kChunkBytes = size_t{1} << 20;

// A peer sent something that is not a frame (bad magic, a length over the
// bound, a message of the wrong size): its stream is out of step.
class MalformedFrame : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws MpiError when `code` is not MPI_SUCCESS.
void check_mpi(int code, const char* call);

class FrameChannel {
 public:
  // `max_payload`: the longest payload a peer may send.
  FrameChannel(MPI_Comm comm, size_t max_payload) : comm_(comm), max_payload_(max_payload) {}
  FrameChannel(const FrameChannel&) = delete;
  FrameChannel& operator=(const FrameChannel&) = delete;
  ~FrameChannel();

  // Posts `frame` (header and payload) to `peer`; it is kept until MPI is
  // done with it.
  void send(int peer, ByteBuffer frame);
  // Frees what the peers have received. True if any send completed.
  bool progress_sends();
  bool sending() const noexcept { return !outgoing_.empty(); }
  // The next whole frame from `peer`, if it has arrived (it may take
  // several calls: each moves its messages on). Throws MalformedFrame.
  std::optional<ByteBuffer> try_receive(int peer);
  // A frame from `peer` has begun to arrive and is not whole yet.
  bool receiving(int peer) const noexcept {
    auto it = incoming_.find(peer);
    return it != incoming_.end() && it->second && it->second->expected != 0;
  }
  // Stops listening to `peer` (lost): its frame in progress is dropped.
  void forget(int peer);

 private:
  struct Outgoing {
    ByteBuffer frame;  // never moved while MPI reads it: Outgoing lives behind a pointer
    std::vector<MPI_Request> requests;
  };
  struct Incoming {
    ByteBuffer frame;
    size_t expected = 0;  // header + payload; 0 until the first message came
    size_t received = 0;
    size_t posted = 0;  // bytes of the message being received
    MPI_Request request = MPI_REQUEST_NULL;
  };
  // Takes the finished message into `in`; true once the frame is whole.
  bool finish_message(Incoming& in);

  MPI_Comm comm_;
  size_t max_payload_;
  std::deque<std::unique_ptr<Outgoing>> outgoing_;
  std::unordered_map<int, std::unique_ptr<Incoming>> incoming_;
};

}  // namespace procpool::mpi::detail
