// SPDX-License-Identifier: MIT
// Reading workers' response rings: the one place the host parses bytes a
// worker wrote. Every header is checked (magic, kind, length, task id)
// before it is used; a frame that fails a check condemns the worker.
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include <procpool/common/errors.hpp>
#include <procpool/common/exception_codec.hpp>
#include <procpool/common/handle_channel.hpp>
#include <procpool/loop/pool_core.hpp>

namespace procpool::detail {

void PoolCore::drain_locked(Published& out) {
  for (auto& slot : slots_)
    if (slot->alive && slot->condemned.empty()) drain_slot(*slot, out);
}

// A worker publishes whole frames only (ResponseWriter: a frame's header
// and payload go out with one store of `head`), so every head the host
// reads ends on a frame boundary. Published bytes that end inside a header
// or a payload are no frame in progress: they are all that will come, and
// waiting for the rest would keep the call pending for ever. A worker that
// died meanwhile (`dead`) is not condemned for it: its death says why.
void PoolCore::drain_slot(WorkerSlot& slot, Published& out, bool dead) {
  ByteRing& ring = slot.responses;
  auto consume = [&](size_t n) {
    if (ring.consume(n)) futex_wake_all(slot.segment->header().response.space_event);
  };
  std::shared_ptr<StateBase> in_hand;  // taken off the queue, not yet settled
  try {
    for (;;) {
      size_t avail = ring.readable();
      if (!slot.have_header) {
        if (avail == 0 || (dead && avail < sizeof(FrameHeader))) return;
        if (avail < sizeof(FrameHeader))
          return condemn(slot, "it published " + std::to_string(avail) + " bytes, less than a frame header");
        FrameHeader h;
        ring.peek(&h, sizeof h);
        if (h.magic != kFrameMagic) return condemn(slot, "it wrote a response frame with a bad magic number");
        if (!is_response(h.kind)) return condemn(slot, "it wrote a frame of unknown kind " + std::to_string(h.kind));
        size_t before = slot.parts ? slot.partial.size() : 0;  // at most max_message_bytes: checked as it came
        if (h.length > options_.max_message_bytes - before)
          return condemn(slot, "it wrote a response of " + std::to_string(before + h.length) +
                                   " bytes, over max_message_bytes");
        if (h.handles > 0 && (h.kind != static_cast<uint32_t>(FrameKind::Value) || h.handles > kMaxHandlesPerFrame))
          return condemn(slot, "it wrote a frame claiming " + std::to_string(h.handles) + " shared buffers");
        bool part = h.kind == static_cast<uint32_t>(FrameKind::Part);
        bool dropped = h.kind == static_cast<uint32_t>(FrameKind::Dropped);
        // Each part but the first is large, and parts are dropped at most
        // once an answer: a worker cannot keep the host reading frames that
        // add nothing (with max_message_bytes, this bounds an answer's frames).
        if (part && h.length < (slot.parts ? min_later_part_bytes(ring.capacity()) : 1))
          return condemn(slot, "it wrote a Part frame of only " + std::to_string(h.length) + " bytes");
        if (dropped && (!slot.parts || h.length != 0))
          return condemn(slot, "it wrote a Dropped frame with no parts of an answer to drop");
        if (dropped && slot.dropped) return condemn(slot, "it dropped the parts of one answer twice");
        if (slot.parts && h.kind == static_cast<uint32_t>(FrameKind::Skipped))
          return condemn(slot, "it wrote a Skipped answer after parts of one");
        // One lock per answer: it must be to the call at the front of the
        // worker's queue, and when the whole answer is one frame that is
        // here (the common case) that call is taken out at the same time
        // and the answer decoded in place.
        size_t whole = sizeof h + static_cast<size_t>(h.length);
        if (avail < whole) {
          if (dead) return;
          return condemn(slot, "it published a frame header announcing " + std::to_string(h.length) +
                                   " bytes, but only " + std::to_string(avail - sizeof h) + " of them");
        }
        bool ends = !part && !dropped;
        bool in_place = ends && !slot.parts;  // decoded where it lies, in two pieces if it wraps
        std::string mismatch;
        Answered answered;
        {
          std::lock_guard dispatch(dispatch_mutex_);
          // A map chunk's calls run while the rest of its frame streams in:
          // parts of its answer may come before the host has sent it all.
          bool arriving = slot.sent == 0 && slot.sent_bytes >= sizeof(FrameHeader) && !ends;
          if (slot.sent == 0 && !arriving)
            mismatch = "it wrote an answer to task " + std::to_string(h.task_id) + ", but it was running none";
          else if (slot.assigned.front().id != h.task_id)
            mismatch = "it wrote an answer to task " + std::to_string(h.task_id) + ", but it was running task " +
                       std::to_string(slot.assigned.front().id);
          else if (in_place)
            answered = take_front_locked(slot);
        }
        if (!mismatch.empty()) return condemn(slot, mismatch);
        if (ends) slot.dropped = false;  // the next answer may drop its parts once again
        if (in_place) {
          // An answer that did not need the large buffer: give it back, as
          // a worker does its own (large answers no longer come in a row).
          if (slot.partial.capacity() > ring.capacity()) slot.partial = ByteBuffer();
          in_hand = answered.task.state;
          ByteRing::Pieces payload = ring.pieces(sizeof h, static_cast<size_t>(h.length));
          settle_answer(slot, answered, h, payload.first, payload.second, out);
          in_hand.reset();
          consume(whole);
          continue;
        }
        consume(sizeof h);
        if (dropped) {
          slot.parts = false;
          slot.dropped = true;
          continue;
        }
        // The answer is reassembled in `partial`, which grows as bytes
        // arrive: the length is the worker's word.
        if (!slot.parts) slot.partial.clear();
        slot.header = h;
        slot.have_header = true;
        slot.frame_left = static_cast<size_t>(h.length);
        continue;
      }
      // A frame of an answer that comes in parts: appended to the others
      // (it is whole in the ring, as every frame is).
      size_t k = slot.frame_left;
      if (k > 0) {
        ring.peek(slot.partial.grow(k), k);
        consume(k);
        slot.frame_left = 0;
      }
      slot.have_header = false;
      slot.parts = slot.header.kind == static_cast<uint32_t>(FrameKind::Part);
      if (slot.parts) continue;  // more of it follows
      Answered answered;
      {
        std::lock_guard dispatch(dispatch_mutex_);
        answered = take_front_locked(slot);
      }
      in_hand = answered.task.state;
      FrameHeader all = slot.header;  // this frame's kind and handles, every part's bytes
      all.length = slot.partial.size();
      settle_answer(slot, answered, all, {slot.partial.data(), slot.partial.size()}, {}, out);
      in_hand.reset();
      if (slot.partial.size() > ring.capacity()) keep_large_buffer_locked(slot);
    }
  } catch (const RingCorrupt& e) {
    condemn(slot, std::string("it wrote ") + e.what());
  } catch (...) {
    // The host could not take the response (out of memory): the call fails
    // with that, and the worker, whose stream is now out of step, is replaced.
    std::shared_ptr<StateBase> front = std::move(in_hand);
    if (!front) {
      std::lock_guard dispatch(dispatch_mutex_);
      if (slot.sent > 0) front = slot.assigned.front().state;
    }
    if (front && front->try_claim()) {
      front->set_error(std::current_exception());
      out.push_back(std::move(front));
    }
    condemn(slot, "the host could not take its response");
  }
}

PoolCore::Answered PoolCore::take_front_locked(WorkerSlot& slot) {
  Answered a{std::move(slot.assigned.front()), false};
  a.withdrawn = a.task.state->place.withdrawn;
  // Read before the frame may go to the spare below (kMeasureUsage).
  if (a.task.frame.size() >= sizeof(FrameHeader)) {
    FrameHeader h;
    std::memcpy(&h, a.task.frame.data(), sizeof h);
    a.measured = (h.handles & kMeasureUsage) != 0;
  }
  note_answer_locked(a.task.function_id);  // crash_loop: the streak ends
  slot.assigned.pop_front();
  slot.count_calls();
  --slot.sent;
  ++slot.answered;
  // The next call may begin from now: its clock starts if its header is in.
  slot.front_deadline = std::chrono::steady_clock::time_point::max();
  start_front_clock_locked(slot);
  if (a.task.frame.capacity() > options_.ring_bytes) keep_spare_frame_locked(a.task.frame);
  return a;
}

namespace {

// Loads a result into `state`. The archive's bounds checks (DecodeError)
// and cereal's own format checks (cereal::Exception) mean the worker's bytes
// are malformed: they propagate, and condemn it. Anything else was thrown
// by the result type's own load(): the value is one it refuses, which is
// no fault of the worker; the call fails with SerializationError.
// Takes the UsageTrailer off the end of an answer held in two pieces.
bool peel_trailer(std::span<const std::byte>& payload, std::span<const std::byte>& rest, UsageTrailer& trailer) {
  constexpr size_t n = sizeof(UsageTrailer);
  if (payload.size() + rest.size() < n) return false;
  std::byte bytes[n];
  size_t from_rest = std::min(rest.size(), n), from_payload = n - from_rest;
  std::memcpy(bytes, payload.data() + payload.size() - from_payload, from_payload);
  std::memcpy(bytes + from_payload, rest.data() + rest.size() - from_rest, from_rest);
  payload = payload.first(payload.size() - from_payload);
  rest = rest.first(rest.size() - from_rest);
  std::memcpy(&trailer, bytes, n);
  return true;
}

std::exception_ptr load_value(StateBase& state, InputArchive& in, const std::string& function, pid_t pid) {
  std::string why;
  try {
    state.load_value(in, AnswerSource{function, pid});
    return nullptr;
  } catch (const DecodeError&) {
    throw;
  } catch (const cereal::Exception&) {
    throw;
  } catch (const std::exception& e) {
    why = e.what();
  } catch (...) {
    why = "a non-standard exception";
  }
  return std::make_exception_ptr(SerializationError(function, "the result's load() refused it: " + why));
}

}  // namespace

void PoolCore::settle_answer(WorkerSlot& slot, Answered& answered, const FrameHeader& header,
                             std::span<const std::byte> payload, std::span<const std::byte> rest,
                             Published& out) {
  std::shared_ptr<StateBase>& state = answered.task.state;
  uint32_t function_id = answered.task.function_id;
  bool withdrawn = answered.withdrawn;
  // Room first: once the state is claimed nothing may throw before it is
  // in `out`, or it would never be published.
  if (out.size() == out.capacity()) out.reserve(std::max<size_t>(16, 2 * out.capacity()));
  std::string malformed;
  std::exception_ptr outcome;
  // Its SharedBytes' descriptors, taken whether or not the state is still
  // open, to keep the channel in step with the frames.
  HandleList handles;
  if (header.handles > 0) {
    try {
      handles = receive_handles(slot.handle_socket.get(), header.task_id, header.handles, options_.max_message_bytes);
    } catch (const DecodeError& e) {
      malformed = e.what();
    } catch (...) {
      outcome = std::current_exception();  // this process is out of descriptors or memory
    }
  }
  bool skipped = header.kind == static_cast<uint32_t>(FrameKind::Skipped);
  if (skipped) {
    if (!withdrawn || header.length != 0) malformed = "a Skipped answer to a call the host never withdrew";
    else outcome = std::make_exception_ptr(TaskCancelled("the call was cancelled before it started"));
  }
  // A measured call's answer ends with its UsageTrailer.
  std::optional<UsageTrailer> usage;
  if (!skipped && malformed.empty() && answered.measured) {
    usage.emplace();
    if (!peel_trailer(payload, rest, *usage)) malformed = "an answer too short to hold the call's usage";
  }
  if (state->try_claim()) {
    bool decode = payload.size() + rest.size() > 0 || header.kind != static_cast<uint32_t>(FrameKind::Value) ||
                  !state->void_value();
    if (!skipped && malformed.empty() && !outcome && decode) {
      try {
        InputArchive in(payload, rest, &handles);
        if (header.kind == static_cast<uint32_t>(FrameKind::Value)) {
          outcome = load_value(*state, in, function_name(function_id), slot.pid);
          if (!outcome && in.remaining() != 0)
            malformed = std::to_string(in.remaining()) + " stray bytes after the result";
        } else {
          outcome = decode_exception(in, function_name(function_id), slot.pid);
        }
      } catch (const std::exception& e) {
        malformed = std::string("a result that does not decode (") + e.what() + ")";
      } catch (...) {
        malformed = "a result whose loading threw a non-standard exception";
      }
    }
    if (!malformed.empty()) {
      try {
        outcome = std::make_exception_ptr(ProtocolError(slot.pid, function_name(function_id), "it wrote " + malformed));
      } catch (...) {
        outcome = std::current_exception();  // out of memory: fail the call with that
      }
    }
    if (outcome) state->set_error(outcome);
    if (usage && malformed.empty()) {
      try {
        state->set_usage(CallUsage{std::chrono::nanoseconds(static_cast<int64_t>(std::min<uint64_t>(usage->wall_ns, INT64_MAX))),
                                   std::chrono::nanoseconds(static_cast<int64_t>(std::min<uint64_t>(usage->cpu_ns, INT64_MAX))),
                                   usage->peak_rss_bytes});
      } catch (...) {
        // Out of memory for the report: the call's outcome stands without it.
      }
    }
    out.push_back(std::move(state));
  }
  // The call this answer was for has failed with that; the worker has moved
  // on from it, so its `started` count decides for the next one.
  if (!malformed.empty()) condemn(slot, "it wrote " + malformed, /*blame_front=*/false);
}

void PoolCore::keep_large_buffer_locked(WorkerSlot& slot) {
  slot.partial_used = std::chrono::steady_clock::now();
  schedule_trim_locked();
}

void PoolCore::schedule_trim_locked() {
  if (trim_due_ || stopping_) return;
  try {
    start_timer(trim_timer_, kKeepLargeBuffer, &PoolCore::on_trim);
    trim_due_ = true;
  } catch (...) {
    // No timer to give them back later (out of memory): now.
    for (auto& s : slots_)
      if (!s->reading_answer()) s->partial = ByteBuffer();
  }
}

void PoolCore::keep_spare_frame_locked(ByteBuffer& frame) {
  // One is kept, the larger (the smaller goes back with `frame`, freed
  // after the dispatch lock).
  if (frame.capacity() <= spare_frame_.capacity()) return;
  schedule_trim_locked();
  if (!trim_due_) return;  // no timer would give it back
  std::swap(spare_frame_, frame);
  spare_used_ = std::chrono::steady_clock::now();
}

void PoolCore::lend_spare_frame(ByteBuffer& frame, size_t need) {
  if (need <= options_.ring_bytes) return;
  ByteBuffer spare;
  {
    std::lock_guard dispatch(dispatch_mutex_);
    // Not one far larger than the call: it would stay in use (resident)
    // where a buffer of the call's own size would do.
    if (spare_frame_.capacity() < need || spare_frame_.capacity() / 4 > need) return;
    spare = std::move(spare_frame_);
  }
  spare.clear();
  spare.append(frame.data(), frame.size());  // what is encoded so far
  frame = std::move(spare);
}

void PoolCore::on_trim() {
  ByteBuffer old_frame;  // freed after the locks
  std::lock_guard drain(drain_mutex_);
  trim_due_ = false;
  if (stopping_) return;
  auto now = std::chrono::steady_clock::now();
  bool kept = false;
  for (auto& slot : slots_) {
    if (slot->reading_answer() || slot->partial.capacity() <= slot->responses.capacity()) continue;
    if (now - slot->partial_used >= kKeepLargeBuffer) slot->partial = ByteBuffer();
    else kept = true;
  }
  {
    std::lock_guard dispatch(dispatch_mutex_);
    if (spare_frame_.capacity() > ByteBuffer::kInline) {
      if (now - spare_used_ >= kKeepLargeBuffer) old_frame = std::move(spare_frame_);
      else kept = true;
    }
  }
  if (kept) schedule_trim_locked();  // look again once that one is old enough
}

void PoolCore::condemn(WorkerSlot& slot, const std::string& why, bool blame_front) {
  {
    std::lock_guard dispatch(dispatch_mutex_);
    slot.condemned = why;
    slot.condemned_blames_front = blame_front;
  }
  ::syscall(SYS_pidfd_send_signal, slot.pidfd->native_handle(), SIGKILL, nullptr, 0);
}

}  // namespace procpool::detail
