// SPDX-License-Identifier: MIT
#pragma once
// An agent's view of one call: the state its local pool settles, which
// keeps the worker's answer as the bytes it was (a Value's result, an
// Exception's records) rather than decoding it, so that the host decodes
// it exactly as it would a local worker's. The answer is written after
// room for the reply's prefix (protocol.hpp), to be sent without a copy.
#include <cstring>
#include <exception>

#include <procpool/common/frame.hpp>
#include <procpool/loop/future_state.hpp>
#include <procpool/mpi/protocol.hpp>

namespace procpool::mpi::detail {

class RelayState final : public procpool::detail::StateBase {
 public:
  explicit RelayState(procpool::detail::TaskId host_task) : host_task_(host_task) { reply_.grow(kReplyPrefixBytes); }
  bool void_value() const noexcept override { return false; }
  void load_value(procpool::detail::InputArchive& in, const procpool::detail::AnswerSource& from) override {
    // A SharedBytes result is memory of this node: its bytes follow the
    // reply (shared_bytes_section.hpp), the indices in the result unchanged.
    if (in.handles()) handles_ = *in.handles();
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
  // The SharedBytes of a Value's result, in the order its indices name.
  const procpool::detail::HandleList& handles() const noexcept { return handles_; }

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
  procpool::detail::HandleList handles_;
};

}  // namespace procpool::mpi::detail
