// SPDX-License-Identifier: MIT
#include <procpool/mpi/agent.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <unordered_map>
#include <vector>

#include <procpool/common/exception_codec.hpp>
#include <procpool/common/function_registry.hpp>
#include <procpool/mpi/frame_channel.hpp>
#include <procpool/mpi/idle_backoff.hpp>
#include <procpool/mpi/protocol.hpp>
#include <procpool/mpi/relay_state.hpp>
#include <procpool/mpi/shared_bytes_section.hpp>

namespace procpool::mpi::detail {
namespace {

using procpool::detail::FrameKind;
using procpool::detail::TaskId;

const procpool::detail::HandleList kNoHandles;

class Agent {
 public:
  Agent(MPI_Comm comm, ProcessPool& pool, size_t max_message_bytes, std::chrono::milliseconds heartbeat)
      // A call's payload is followed by its SharedBytes' sizes and its
      // options (its SharedBytes' own bytes count against the bound).
      : channel_(comm, max_message_bytes + kMaxSharedBytesSizes + sizeof(CallTrailer)), pool_(pool),
        max_message_bytes_(max_message_bytes), heartbeat_(heartbeat) {}

  void serve() {
    IdleBackoff backoff;
    for (;;) {
      bool busy = channel_.progress_sends();
      while (auto frame = channel_.try_receive(0)) {
        take(std::move(*frame));
        busy = true;
      }
      busy |= answer_settled();
      beat();
      if (stopping_ && running_.empty()) {
        if (!said_stopped_) say_stopped();
        if (!channel_.sending()) return;
      }
      if (busy) {
        backoff.active();
        continue;
      }
      // A settled call wakes the wait at once; the host's frames are seen
      // at the next look (idle_backoff.hpp).
      backoff.pause(mutex_, settled_cv_, [&] { return !settled_.empty(); });
    }
  }

 private:
  void take(ByteBuffer frame) {
    FrameHeader header;
    std::memcpy(&header, frame.data(), sizeof header);
    auto kind = static_cast<FrameKind>(header.kind);
    if (kind == FrameKind::Stop) {
      stopping_ = true;
      return;
    }
    if (kind == kCancelFrame) {
      // As a local Future::cancel(); the call is answered as always, once
      // (TaskCancelled if this withdrew or stopped it).
      auto it = running_.find(header.task_id);
      if (it != running_.end()) it->second->cancel();
      return;
    }
    if (kind != FrameKind::Call && kind != FrameKind::CallMany)
      throw MalformedFrame("rank 0 sent a frame of kind " + std::to_string(header.kind));
    if (header.length < sizeof(CallTrailer)) throw MalformedFrame("rank 0 sent a call without its options");
    CallTrailer trailer;
    std::memcpy(&trailer, frame.data() + frame.size() - sizeof trailer, sizeof trailer);
    auto state = std::make_shared<RelayState>(header.task_id);
    // The call's SharedBytes, made in this node from their bytes
    // (shared_bytes_section.hpp); a section that does not hold is the
    // host's protocol broken (MalformedFrame: the agent stops).
    std::span<const std::byte> call(frame.data() + sizeof header, frame.size() - sizeof header - sizeof trailer);
    procpool::detail::HandleList handles;
    try {
      handles = take_shared_bytes(call, procpool::detail::handle_count(header.handles), max_message_bytes_);
    } catch (const procpool::Error& e) {
      fail(*state, e);  // no memory for them here
      send_reply(*state);
      return;
    }
    frame.resize(sizeof header + call.size());  // the frame the local pool takes
    uint32_t function_id = 0;
    if (frame.size() >= sizeof header + sizeof function_id)
      std::memcpy(&function_id, frame.data() + sizeof header, sizeof function_id);
    // The worker checks the id and fingerprint again (call_decoder.hpp);
    // this check only keeps an id nothing is registered under out of the
    // pool's books.
    if (!procpool::detail::FunctionRegistry::instance().at(function_id)) {
      fail(*state, UnknownFunction("#" + std::to_string(function_id), {}));
      send_reply(*state);
      return;
    }
    running_.emplace(header.task_id, state);
    state->on_ready_anywhere([this, task = header.task_id] {
      {
        std::lock_guard lock(mutex_);
        settled_.push_back(task);
      }
      settled_cv_.notify_one();
    });
    procpool::detail::submit_encoded_call(pool_, std::move(frame), std::move(handles), kind, function_id, state,
                                          options_of(trailer));
  }

  // While it holds calls, or receives one, the host hears from this agent
  // at least every heartbeat_ (MpiOptions::agent_timeout): an Alive frame
  // when nothing else went out meanwhile.
  void beat() {
    if (heartbeat_.count() <= 0 || (running_.empty() && !channel_.receiving(0))) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last_sent_ < heartbeat_) return;
    ByteBuffer alive;
    FrameHeader header = procpool::detail::make_frame_header(kAliveFrame, 0, 0);
    alive.append(&header, sizeof header);
    channel_.send(0, std::move(alive));
    last_sent_ = now;
  }

  static CallOptions options_of(const CallTrailer& trailer) {
    CallOptions options;
    if (trailer.flags & kHasTimeout) options.timeout = std::chrono::milliseconds(trailer.timeout_ms);
    if (trailer.flags & kHasCancelRunning) options.cancel_running = (trailer.flags & kCancelRunning) != 0;
    if (trailer.flags & kHasMeasure) options.measure_usage = (trailer.flags & kMeasure) != 0;
    return options;
  }

  template <class E>
  static void fail(RelayState& state, E error) {
    if (state.try_claim()) {
      state.set_error(std::make_exception_ptr(std::move(error)));
      state.publish();
    }
  }

  bool answer_settled() {
    std::vector<TaskId> settled;
    {
      std::lock_guard lock(mutex_);
      settled.swap(settled_);
    }
    for (TaskId task : settled) {
      auto it = running_.find(task);
      if (it == running_.end()) continue;
      auto state = std::move(it->second);
      running_.erase(it);
      send_reply(*state);
    }
    return !settled.empty();
  }

  void send_reply(RelayState& state) {
    FrameKind kind = state.kind();
    ByteBuffer reply;
    if (state.failed()) {
      // The local pool's own verdict (a crash, a deadline, a shutdown):
      // its records, as a worker would have written an exception's.
      kind = FrameKind::Exception;
      reply.grow(kReplyPrefixBytes);
      try {
        std::rethrow_exception(state.error());
      } catch (...) {
        procpool::detail::encode_current_exception(reply, "", max_message_bytes_);
      }
    } else {
      reply = state.take_reply();
    }
    const procpool::detail::HandleList& handles = kind == FrameKind::Value ? state.handles() : kNoHandles;
    size_t shared = shared_bytes_section_size(handles) - handles.size() * sizeof(uint64_t);
    if (!handles.empty() && reply.size() - kReplyPrefixBytes + shared > max_message_bytes_) {
      // Over MPI the result's SharedBytes are bytes of its message.
      auto refused = std::make_shared<RelayState>(state.host_task());
      fail(*refused,
           ResourceLimitExceeded("max_message_bytes", reply.size() - kReplyPrefixBytes + shared, max_message_bytes_,
                                 "the result with the bytes of its SharedBytes (they cross MPI as bytes)"));
      send_reply(*refused);
      return;
    }
    size_t flags = 0;
    if (const CallUsage* usage = state.usage()) {
      // The worker measured the call: the host gives it to Future::usage().
      procpool::detail::UsageTrailer trailer{static_cast<uint64_t>(usage->wall.count()),
                                             static_cast<uint64_t>(usage->cpu.count()), usage->peak_rss_bytes};
      reply.append(&trailer, sizeof trailer);
      flags = procpool::detail::kMeasureUsage;
    }
    append_shared_bytes(reply, handles);
    flags |= handles.size();
    int32_t worker = static_cast<int32_t>(state.worker());
    FrameHeader header =
        procpool::detail::make_frame_header(kind, state.host_task(), reply.size() - sizeof header, flags);
    std::memcpy(reply.data(), &header, sizeof header);
    std::memcpy(reply.data() + sizeof header, &worker, sizeof worker);
    channel_.send(0, std::move(reply));
    last_sent_ = std::chrono::steady_clock::now();
  }

  // After every answer (frames to one peer arrive in order): the host
  // finalizes once it has this from every agent it has not lost.
  void say_stopped() {
    ByteBuffer stopped;
    FrameHeader header = procpool::detail::make_frame_header(kStoppedFrame, 0, 0);
    stopped.append(&header, sizeof header);
    channel_.send(0, std::move(stopped));
    said_stopped_ = true;
  }

  FrameChannel channel_;
  ProcessPool& pool_;
  size_t max_message_bytes_;
  std::chrono::milliseconds heartbeat_;
  std::chrono::steady_clock::time_point last_sent_{};
  bool stopping_ = false;
  bool said_stopped_ = false;
  std::unordered_map<TaskId, std::shared_ptr<RelayState>> running_;
  std::mutex mutex_;
  std::condition_variable settled_cv_;
  std::vector<TaskId> settled_;  // settled by the pool's threads, not yet answered
};

}  // namespace

void serve_host(MPI_Comm comm, ProcessPool& pool, size_t max_message_bytes, std::chrono::milliseconds heartbeat) {
  Agent(comm, pool, max_message_bytes, heartbeat).serve();
}

}  // namespace procpool::mpi::detail
