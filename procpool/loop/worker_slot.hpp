// SPDX-License-Identifier: MIT
#pragma once
// The host's record of one worker process and the calls it holds.
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <string>

#include <procpool/common/archive.hpp>
#include <procpool/common/frame.hpp>
#include <procpool/common/unique_fd.hpp>
#include <procpool/common/worker_segment.hpp>
#include <procpool/loop/future_state.hpp>
#include <procpool/loop/output_capture.hpp>
#include <procpool/loop/response_stream.hpp>

namespace procpool::detail {

struct TaskRecord {
  TaskId id = 0;
  uint32_t function_id = 0;
  uint32_t timeout_ms = 0;  // its deadline (0: none); in the padding after function_id
  std::shared_ptr<StateBase> state;
  ByteBuffer frame;                     // FrameHeader + payload, kept until answered so an
                                        // unstarted call can be re-sent after a crash
  std::unique_ptr<HandleList> handles;  // its SharedBytes (null: none)
};

// A worker process the pool has forked and not yet put in a slot: a
// spare (PoolOptions::spare_workers), or a replacement on its way to the
// slot that asked for it (worker_forker.cpp). Its own doorbell, SharedBytes
// channel and output pipes come with it into the slot.
struct ForkedWorker {
  std::unique_ptr<WorkerSegment> segment;
  // The eventfd the worker rings: each process has its own, so that it can
  // neither ring nor silence another's. A wait armed for an earlier process
  // carries an older generation and is dropped (PoolCore::on_doorbell).
  std::unique_ptr<boost::asio::posix::stream_descriptor> doorbell;
  uint64_t doorbell_generation = 0;
  UniqueFd handle_socket;
  pid_t pid = -1;
  std::unique_ptr<boost::asio::posix::stream_descriptor> pidfd;
  std::shared_ptr<OutputCapture> output;
  std::chrono::steady_clock::time_point forked_at{};
  // Guarded by the drain mutex, as WorkerSlot's.
  bool ready = false;
  bool start_timed_out = false;
};

struct WorkerSlot {
  size_t index = 0;
  std::unique_ptr<WorkerSegment> segment;
  ByteRing requests;   // the host produces
  ByteRing responses;  // the host consumes
  // The eventfd the worker rings: each process has its own, so that it can
  // neither ring nor silence another's. A wait armed for an earlier process
  // carries an older generation and is dropped (PoolCore::on_doorbell).
  std::unique_ptr<boost::asio::posix::stream_descriptor> doorbell;
  uint64_t doorbell_generation = 0;
  UniqueFd handle_socket;  // the host's end of this process's SharedBytes channel
  pid_t pid = -1;
  std::unique_ptr<boost::asio::posix::stream_descriptor> pidfd;
  // Its stdout and stderr with WorkerOutput::capture (else null), read on
  // the reactor; finished (read to the end) when the process is reaped.
  std::shared_ptr<OutputCapture> output;
  bool alive = false;
  // Guarded by the drain mutex (set by spawn, which holds both): when this
  // process was forked, whether it has said it is ready (ControlBlock::ready),
  // and whether the watchdog killed it for not saying so in time.
  std::chrono::steady_clock::time_point forked_at{};
  bool ready = false;
  bool start_timed_out = false;
  bool retired = false;  // the pool is broken (PoolBroken): no more forks
  // Guarded by both mutexes: the slot has lost its process and waits for
  // the forker's next one (no spare was ready).
  bool needs_process = false;

  // Guarded by the pool's dispatch mutex.
  std::deque<TaskRecord> assigned;  // in ring order; front is the oldest unanswered
  // assigned.size(), for the drain side, which holds only the drain mutex:
  // it asks a worker for doorbells only while the worker holds calls
  // (PoolCore::request_doorbells_locked). Stored after every change of
  // `assigned`, all under the dispatch mutex; seq_cst when a call is given
  // to a worker that held none (see expect_answers_locked for why). Other
  // stores are relaxed: a reader that sees a stale count of one or more
  // only arms a doorbell that was not needed.
  std::atomic<size_t> calls_held{0};
  void count_calls(std::memory_order order = std::memory_order_relaxed) noexcept {
    calls_held.store(assigned.size(), order);
  }
  // paced_room as last read, and `answered` then. The pace is a line the
  // worker writes at every call, so a read at every dispatch would miss the
  // cache each time: it is read again after 16 more answers (or a new
  // process: `answered` restarts below room_read_at), or when a call comes
  // to a worker that held none (room_stale): the start of a burst.
  size_t room = 0;
  uint64_t room_read_at = 0;
  bool room_stale = true;
  size_t sent = 0;            // assigned[0, sent) are fully in the ring
  size_t sent_bytes = 0;      // bytes of assigned[sent] already in the ring
  bool handles_sent = false;  // assigned[sent]'s SharedBytes descriptors are sent
  uint64_t answered = 0;      // responses consumed from this process
  // Calls this process may still be given (max_tasks_per_child; SIZE_MAX:
  // no limit). Taken when a call is assigned, given back when one leaves
  // `assigned` with no byte of it in the ring: so the host hands the
  // worker exactly the frames the worker counts (a withdrawn call it
  // answers Skipped counts on both sides), and the worker exits after the
  // last one's answer.
  size_t calls_left = SIZE_MAX;
  std::string request_fault;  // the worker corrupted its request ring; being killed
  // Deadlines (deadlines.cpp). When the front call, if it has a timeout,
  // must have ended: the host's own lower bound on when the worker may have
  // begun it, plus its timeout; max() while it has none or its header is
  // not in the ring yet.
  std::chrono::steady_clock::time_point front_deadline = std::chrono::steady_clock::time_point::max();
  // Work stealing (work_stealing.cpp): when a look first found this
  // process, `answered` answers in, not yet begun on its front call; the
  // pid and count say which front that was. Guarded by the dispatch mutex.
  pid_t unbegun_pid = -1;
  uint64_t unbegun_answered = 0;
  std::chrono::steady_clock::time_point unbegun_since{};

  // Guarded by the pool's drain mutex: an answer being reassembled.
  AnswerAssembly answer;
  bool reading_answer() const noexcept { return answer.reading_answer(); }
  void forget_answer() noexcept { answer.forget(); }
  // When `partial` last held an answer larger than the ring: it is kept for
  // the next one (fresh pages cost more than the copy) until the pool's
  // trim finds it unused for kKeepLargeBuffer (PoolCore::on_trim).
  std::chrono::steady_clock::time_point partial_used{};
  // Set when the worker broke the protocol: it is being killed, its rings
  // are no longer read, and the call it was running fails with this.
  std::string condemned;
  bool condemned_blames_front = false;  // see PoolCore::condemn

  // A live process the host neither condemned nor is killing for a forged
  // request tail: it may be given calls and have them taken back.
  bool usable() const noexcept { return alive && condemned.empty() && request_fault.empty(); }
};

}  // namespace procpool::detail
