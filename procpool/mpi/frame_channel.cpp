// SPDX-License-Identifier: MIT
#include <procpool/mpi/frame_channel.hpp>

#include <algorithm>
#include <climits>
#include <cstring>
#include <string>

#include <procpool/mpi/errors.hpp>

namespace procpool::mpi::detail {

void check_mpi(int code, const char* call) {
  if (code != MPI_SUCCESS) throw MpiError(call, code);
}

FrameChannel::~FrameChannel() {
  // Only at the end of the run, once every peer has what it was sent
  // (finalize waits for the sends first); cancel whatever is left.
  for (auto& [peer, in] : incoming_)
    if (in->request != MPI_REQUEST_NULL) {
      MPI_Cancel(&in->request);
      MPI_Request_free(&in->request);
    }
  for (auto& out : outgoing_)
    for (auto& r : out->requests)
      if (r != MPI_REQUEST_NULL) MPI_Request_free(&r);
}

void FrameChannel::send(int peer, ByteBuffer frame) {
  auto out = std::make_unique<Outgoing>();
  out->frame = std::move(frame);
  const std::byte* data = out->frame.data();
  size_t size = out->frame.size();
  out->requests.reserve(size / kChunkBytes + 1);
  for (size_t at = 0; at < size || at == 0; at += kChunkBytes) {
    int n = static_cast<int>(std::min(kChunkBytes, size - at));
    MPI_Request request = MPI_REQUEST_NULL;
    int code = MPI_Isend(data + at, n, MPI_BYTE, peer, kFrameTag, comm_, &request);
    if (code != MPI_SUCCESS) {
      // The messages already posted still read the buffer: keep it.
      outgoing_.push_back(std::move(out));
      check_mpi(code, "MPI_Isend");  // throws
      return;
    }
    out->requests.push_back(request);
    if (size == 0) break;
  }
  outgoing_.push_back(std::move(out));
}

bool FrameChannel::progress_sends() {
  bool any = false;
  for (auto it = outgoing_.begin(); it != outgoing_.end();) {
    int done = 0;
    check_mpi(MPI_Testall(static_cast<int>((*it)->requests.size()), (*it)->requests.data(), &done, MPI_STATUSES_IGNORE),
              "MPI_Testall");
    if (done) {
      it = outgoing_.erase(it);
      any = true;
    } else {
      ++it;
    }
  }
  return any;
}

bool FrameChannel::finish_message(Incoming& in) {
  if (in.expected == 0) {
    if (in.posted < sizeof(FrameHeader)) throw MalformedFrame("a message too short for a frame header");
    FrameHeader header;
    std::memcpy(&header, in.frame.data(), sizeof header);
    if (header.magic != procpool::detail::kFrameMagic) throw MalformedFrame("a frame with a bad magic");
    if (header.length > max_payload_)
      throw MalformedFrame("a frame of " + std::to_string(header.length) + " bytes, over the bound of " +
                           std::to_string(max_payload_));
    in.expected = sizeof header + header.length;
    if (in.posted != std::min(in.expected, kChunkBytes))
      throw MalformedFrame("a first message of " + std::to_string(in.posted) + " bytes for a frame of " +
                           std::to_string(in.expected));
    in.frame.resize(in.expected);  // keeps the first message's bytes
  }
  in.received += in.posted;
  in.posted = 0;
  return in.received == in.expected;
}

std::optional<ByteBuffer> FrameChannel::try_receive(int peer) {
  auto& slot = incoming_[peer];
  if (!slot) slot = std::make_unique<Incoming>();
  Incoming& in = *slot;
  for (;;) {
    if (in.request != MPI_REQUEST_NULL) {
      int done = 0;
      check_mpi(MPI_Test(&in.request, &done, MPI_STATUS_IGNORE), "MPI_Test");
      if (!done) return std::nullopt;
      if (finish_message(in)) {
        ByteBuffer whole = std::move(in.frame);
        in = Incoming{};
        return whole;
      }
    }
    int arrived = 0;
    MPI_Message message;
    MPI_Status status;
    check_mpi(MPI_Improbe(peer, kFrameTag, comm_, &arrived, &message, &status), "MPI_Improbe");
    if (!arrived) return std::nullopt;
    int count = 0;
    check_mpi(MPI_Get_count(&status, MPI_BYTE, &count), "MPI_Get_count");
    auto n = static_cast<size_t>(count);
    std::byte* into = nullptr;
    if (in.expected == 0) {
      in.frame.resize(n);
      into = in.frame.data();
    } else {
      if (n != std::min(kChunkBytes, in.expected - in.received))
        throw MalformedFrame("a message of " + std::to_string(n) + " bytes where " +
                             std::to_string(std::min(kChunkBytes, in.expected - in.received)) + " were due");
      into = in.frame.data() + in.received;
    }
    in.posted = n;
    check_mpi(MPI_Imrecv(into, count, MPI_BYTE, &message, &in.request), "MPI_Imrecv");
  }
}

void FrameChannel::forget(int peer) {
  auto it = incoming_.find(peer);
  if (it == incoming_.end()) return;
  if (it->second->request != MPI_REQUEST_NULL) {
    MPI_Cancel(&it->second->request);
    MPI_Request_free(&it->second->request);
  }
  incoming_.erase(it);
}

}  // namespace procpool::mpi::detail
