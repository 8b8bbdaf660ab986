// SPDX-License-Identifier: MIT
// Reading workers' response rings: the one place the host takes bytes a
// worker wrote. The framing is read_responses' (response_stream.hpp), the
// payload's decoding decode_answer's (answer_decoder.hpp); here they meet
// the pool's calls. A frame that fails a check condemns the worker.
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <procpool/common/errors.hpp>
#include <procpool/common/handle_channel.hpp>
#include <procpool/loop/answer_decoder.hpp>
#include <procpool/loop/pool_core.hpp>
#include <procpool/loop/response_stream.hpp>

namespace procpool::detail {

void PoolCore::drain_locked(Published& out) {
  for (auto& slot : slots_)
    if (slot->alive && slot->condemned.empty()) drain_slot(*slot, out);
}

// The host's side of read_responses for one worker: answers go to the
// calls at the front of its queue, under the dispatch lock once per answer.
class PoolCore::SlotAnswers final : public AnswerTaker {
 public:
  SlotAnswers(PoolCore& pool, WorkerSlot& slot, Published& out) noexcept : pool_(pool), slot_(slot), out_(out) {}

  std::string accept(const FrameHeader& h, bool ends, bool whole) override {
    // One lock per answer: it must be to the call at the front of the
    // worker's queue, and when the whole answer is one frame that is here
    // (the common case) that call is taken out at the same time and the
    // answer decoded in place.
    std::lock_guard dispatch(pool_.dispatch_mutex_);
    // Condemned by an answer earlier in this drain (settle_answer): what
    // it wrote after that is not read, lest a frame it forged after the
    // call it failed settle, or be blamed on, a call it never began.
    if (!slot_.condemned.empty()) return slot_.condemned;
    // A map chunk's calls run while the rest of its frame streams in:
    // parts of its answer may come before the host has sent it all.
    bool arriving = slot_.sent == 0 && slot_.sent_bytes >= sizeof(FrameHeader) && !ends;
    if (slot_.sent == 0 && !arriving)
      return "it wrote an answer to task " + std::to_string(h.task_id) + ", but it was running none";
    if (slot_.assigned.front().id != h.task_id)
      return "it wrote an answer to task " + std::to_string(h.task_id) + ", but it was running task " +
             std::to_string(slot_.assigned.front().id);
    if (whole) answered_ = pool_.take_front_locked(slot_);
    return {};
  }

  void settle(const FrameHeader& h, std::span<const std::byte> payload, std::span<const std::byte> rest,
              bool whole) override {
    if (!whole) {
      std::lock_guard dispatch(pool_.dispatch_mutex_);
      answered_ = pool_.take_front_locked(slot_);
    }
    in_hand = answered_.task.state;
    pool_.settle_answer(slot_, answered_, h, payload, rest, out_);
    in_hand.reset();
    answered_ = Answered();  // its frame freed here, not under the dispatch lock at the next take
    if (!whole && slot_.answer.partial.size() > slot_.responses.capacity()) pool_.keep_large_buffer_locked(slot_);
  }

  void wake_producer() override { futex_wake_all(slot_.segment->header().response.space_event); }

  std::shared_ptr<StateBase> in_hand;  // taken off the queue, not yet settled

 private:
  PoolCore& pool_;
  WorkerSlot& slot_;
  Published& out_;
  Answered answered_;
};

void PoolCore::drain_slot(WorkerSlot& slot, Published& out, bool dead) {
  SlotAnswers answers(*this, slot, out);
  try {
    std::string why = read_responses(slot.responses, slot.answer, options_.max_message_bytes, dead, answers);
    if (!why.empty()) condemn(slot, why);
  } catch (const RingCorrupt& e) {
    condemn(slot, std::string("it wrote ") + e.what());
  } catch (...) {
    // The host could not take the response (out of memory): the call fails
    // with that, and the worker, whose stream is now out of step, is replaced.
    std::shared_ptr<StateBase> front = std::move(answers.in_hand);
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
  if (!answers_made_room_)
    answers_made_room_ = !pending_.empty() || std::any_of(slots_.begin(), slots_.end(),
                                                          [](const auto& s) { return s->sent < s->assigned.size(); });
  slot.assigned.pop_front();
  slot.count_calls();
  --slot.sent;
  ++slot.answered;
  if (slot.assigned.empty()) note_idle_locked();  // work stealing
  // The next call may begin from now: its clock starts if its header is in.
  slot.front_deadline = std::chrono::steady_clock::time_point::max();
  start_front_clock_locked(slot);
  if (a.task.frame.capacity() > options_.ring_bytes) keep_spare_frame_locked(a.task.frame);
  return a;
}

void PoolCore::settle_answer(WorkerSlot& slot, Answered& answered, const FrameHeader& header,
                             std::span<const std::byte> payload, std::span<const std::byte> rest, Published& out) {
  std::shared_ptr<StateBase>& state = answered.task.state;
  // Room first: once the state is claimed nothing may throw before it is
  // in `out`, or it would never be published.
  if (out.size() == out.capacity()) out.reserve(std::max<size_t>(16, 2 * out.capacity()));
  AnswerVerdict verdict;
  // Its SharedBytes' descriptors, taken whether or not the state is still
  // open, to keep the channel in step with the frames.
  HandleList handles;
  if (header.handles > 0) {
    try {
      handles = receive_handles(slot.handle_socket.get(), header.task_id, header.handles, options_.max_message_bytes);
    } catch (const DecodeError& e) {
      verdict.malformed = e.what();
    } catch (...) {
      verdict.outcome = std::current_exception();  // this process is out of descriptors or memory
    }
  }
  check_answer(header, answered.withdrawn, answered.measured, payload, rest, verdict);
  if (state->try_claim()) {
    decode_answer(*state, header, payload, rest, &handles, function_name(answered.task.function_id), slot.pid, verdict);
    out.push_back(std::move(state));
  }
  // The call this answer was for has failed with that; the worker has moved
  // on from it, so its `started` count decides for the next one.
  if (!verdict.malformed.empty()) condemn(slot, "it wrote " + verdict.malformed, /*blame_front=*/false);
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
      if (!s->reading_answer()) s->answer.partial = ByteBuffer();
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
  if (need <= options_.ring_bytes || in_another_process()) return;  // submit refuses it there
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
    if (slot->reading_answer() || slot->answer.partial.capacity() <= slot->responses.capacity()) continue;
    if (now - slot->partial_used >= kKeepLargeBuffer) slot->answer.partial = ByteBuffer();
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
    if (!slot.condemned.empty()) return;  // the first verdict stands, and its SIGKILL is sent
    slot.condemned = why;
    slot.condemned_blames_front = blame_front;
  }
  ::syscall(SYS_pidfd_send_signal, slot.pidfd->native_handle(), SIGKILL, nullptr, 0);
}

}  // namespace procpool::detail
