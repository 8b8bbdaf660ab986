// SPDX-License-Identifier: MIT
#pragma once
// An agent's view of one call: the state its local pool settles, which
// keeps the worker's answer as the bytes it was (a Value's result, an
// Exception's records) rather than decoding it, so that the host decodes
// it exactly as it would a local worker's. The answer is written after
// room for the reply's prefix (protocol.hpp), to be sent without a copy.
#include <cstring>
#include <exception>
#include <stdexcept>

#include <procpool/common/frame.hpp>
#include <procpool/loop/future_state.hpp>
#include <procpool/mpi/protocol.hpp>

namespace procpool::mpi::detail {

class RelayState final : public procpool::detail::StateBase {
 public:
  explicit RelayState(procpool::detail::TaskId host_task) : host_task_(host_task) { reply_.grow(kReplyPrefixBytes); }
  bool void_value() const noexcept override { return false; }
  void load_value(procpool::detail::InputArchive& in, const procpool::detail::AnswerSource& from) override {
    // A SharedBytes result is a descriptor in this node: not carried yet.
    if (in.handles() && !in.handles()->empty())
      throw std::runtime_error("a result holding SharedBytes cannot cross MPI yet");
    keep(in, procpool::detail::FrameKind::Value, from.pid);
  }
  std::exception_ptr load_exception(procpool::detail::InputArchive& in,
                                    const procpool::detail::AnswerSource& from) override {
    keep(in, procpool::detail::FrameKind::Exception, from.pid);
    return nullptr;  // settles "with a value": the records, for the host
  }

  procpool::detail::TaskId host_task() const noexcept { return host_task_; }
  procpool::detail::FrameKind kind() const noexcept { return kind_; }
  pid_t worker() const noexcept { return worker_; }
  // After ready() without an error: the reply, its prefix still to be filled.
  procpool::detail::ByteBuffer take_reply() noexcept { return std::move(reply_); }

 private:
  void keep(procpool::detail::InputArchive& in, procpool::detail::FrameKind kind, pid_t pid) {
    kind_ = kind;
    worker_ = pid;
    in.read_pieces(in.remaining(), [this](const std::byte* piece, size_t n) { reply_.append(piece, n); });
  }

  procpool::detail::TaskId host_task_;
  procpool::detail::FrameKind kind_ = procpool::detail::FrameKind::Value;
  pid_t worker_ = 0;
  procpool::detail::ByteBuffer reply_;
};

}  // namespace procpool::mpi::detail
