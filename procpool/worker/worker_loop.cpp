// SPDX-License-Identifier: MIT
#include <procpool/worker/worker_loop.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <span>

#include <procpool/common/archive.hpp>
#include <procpool/common/backtrace.hpp>
#include <procpool/common/cpu_relax.hpp>
#include <procpool/common/cpu_yield.hpp>
#include <procpool/common/errno_text.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/common/exception_codec.hpp>
#include <procpool/common/frame.hpp>
#include <procpool/common/function_registry.hpp>
#include <procpool/common/handle_channel.hpp>
#include <procpool/common/shared_bytes.hpp>
#include <procpool/worker/call_decoder.hpp>
#include <procpool/worker/call_pace.hpp>
#include <procpool/worker/response_writer.hpp>
#include <procpool/worker/step_aside.hpp>
#include <procpool/worker/this_call.hpp>
#include <procpool/worker/usage_meter.hpp>
#include <procpool/worker/withdrawn_calls.hpp>
#include <procpool/worker/worker_config.hpp>
#include <procpool/worker/worker_lives.hpp>

namespace procpool::detail {
namespace {

// Set when a doorbell write or a SharedBytes send finds its descriptor gone
// (a task closed it): the worker can no longer wake the host, so it exits
// once its answer is in the ring, and the pool reads the answer and replaces
// it. (A descriptor closed and then reused by another file goes unnoticed
// here; the pool's watchdog still reads the answers.)
bool g_host_unreachable = false;
bool lost_the_host(int err) noexcept { return err == EBADF || err == ENOTSOCK || err == EPIPE || err == EINVAL; }

// The first part of the spin after a task only polls: a caller calling back
// to back sends the next call within a microsecond. After it, the spin yields
// the CPU between polls, so that on a machine with no spare core the waiting
// worker does not keep the host (which is making the next call) off it. A
// call that found the worker asleep skips the first part (wait_readable).
constexpr auto kEagerSpin = std::chrono::microseconds(2);

// A worker woken this soon after it fell asleep is in a burst of calls: its
// host is busy submitting them (SleepAway, step_aside.hpp).
constexpr auto kShortSleep = std::chrono::microseconds(100);

#ifdef PROCPOOL_COVERAGE
extern "C" void __gcov_dump();  // libgcov (GCC): writes this process's line counts
#endif

// A worker that ends normally (stopped, or at the end of its life). Only in
// a coverage build (-DPROCPOOL_COVERAGE=ON) does it do more than _exit: it
// first writes its gcov counts, which _exit would lose. Not from a worker
// whose sandbox, namespaces or limits could refuse (or kill it for) the
// write of a .gcda file.
[[noreturn]] void end_worker(int code, [[maybe_unused]] const WorkerConfig& config) noexcept {
#ifdef PROCPOOL_COVERAGE
  const ResourceLimits& limits = config.limits;
  if (!config.sandbox && config.namespace_flags == 0 && !limits.memory && !limits.open_files && !limits.file_size)
    __gcov_dump();
#endif
  _exit(code);
}

class WorkerLoop {
 public:
  WorkerLoop(WorkerSegment& segment, const WorkerConfig& config)
      : control_(segment.control()), withdrawn_(segment.header().cancelled), stop_(segment.header().stop),
        host_cpu_(segment.header().host_cpu.cpu), requests_(segment.request_ring()),
        responses_(segment.response_ring()), config_(config) {}

  [[noreturn]] void run() {
    for (;;) {
      FrameHeader header;
      if (stop_requested()) end_worker(0, config_);  // before it begins another call (StopRequest)
      await_call();
      requests_.peek(&header, sizeof header);
      RequestKind kind = classify_request(header, config_.max_message_bytes);
      if (kind == RequestKind::Malformed) _exit(kExitProtocol);
      if (kind == RequestKind::Stop) end_worker(0, config_);
      if (stop_requested()) end_worker(0, config_);
      if (lives_.active()) lives_.before_call();
      serve(header);
      // Its answer is published: a worker at the end of its life (calls
      // served, memory) goes now, before it reads another call. The host
      // gives it no call past max_tasks_per_child, and requeues any behind
      // one it was over memory after (they never began).
      if (lives_.active()) {
        if (int code = lives_.after_call(started_)) {
          std::fflush(stdout);  // what its tasks printed (only theirs: see end_worker_on_exit)
          std::fflush(stderr);
          end_worker(code, config_);
        }
      }
    }
  }

 private:
  void serve(const FrameHeader& call) {
    // A call whole in the ring is decoded in place (in two pieces if it
    // wraps), and its ring space (header and payload) is released only after
    // the answer is published: the answer is what the caller waits for. A
    // call still arriving is decoded as it streams in, each piece released
    // once read.
    size_t length = static_cast<size_t>(call.length);
    size_t whole = sizeof(FrameHeader) + length;
    bool in_place = requests_.readable() >= whole;
    if (!in_place) release_request(sizeof(FrameHeader));

    // The descriptors of its SharedBytes were sent before the frame; they
    // are taken even for a withdrawn call, to stay in step with the frames.
    HandleList arguments;
    std::exception_ptr unreceived;
    uint16_t handles = handle_count(call.handles);
    if (handles > 0) {
      try {
        arguments = receive_handles(config_.handle_socket, call.task_id, handles, SIZE_MAX);  // the host's
      } catch (const DecodeError&) {
        _exit(kExitProtocol);  // the channel is out of step with the frames: every later call would be too
      } catch (...) {
        unreceived = std::current_exception();  // out of descriptors or memory: this call fails
      }
    }

    // Counted before the arguments are decoded: the function of a CallMany
    // may run before the rest of its frame has arrived.
    control_.running_task.store(call.task_id, std::memory_order_relaxed);
    control_.started.store(++started_, std::memory_order_release);

    RequestStream stream(*this);
    std::optional<InputArchive> args;
    if (in_place) {
      ByteRing::Pieces payload = requests_.pieces(sizeof(FrameHeader), length);
      args.emplace(payload.first, payload.second, &arguments);
    } else {
      args.emplace(stream, length, &arguments);
    }
    ResponseWriter writer(responses_, call.task_id, config_.max_message_bytes, &ring_host_doorbell);
    writer.begin();
    bool many = call.kind == static_cast<uint32_t>(FrameKind::CallMany);
    results_.clear();
    FrameKind kind = FrameKind::Skipped;
    if (!withdrawn_.take(call.task_id)) {
      std::optional<UsageMeter> meter;
      if (call.handles & kMeasureUsage) meter.emplace();
      kind = run_call(*args, many, unreceived, writer);
      // What the task printed goes out before its answer: a call answered
      // is a call whose output is in the pipe.
      if (config_.output == WorkerOutput::capture) {
        std::fflush(stdout);
        std::fflush(stderr);
      }
      if (kind == FrameKind::Value && !results_.empty()) kind = send_result_handles(call.task_id, writer);
      if (meter) {
        UsageTrailer usage = meter->finish();
        writer.write(&usage, sizeof usage);
      }
    }
    // What the decoding left of a streamed call (all of a withdrawn one, the
    // rest of one that failed) is read past, to reach the next frame.
    args->skip_rest();
    stream.release();
    writer.finish(kind, kind == FrameKind::Value ? results_.size() : 0);
    results_.clear();  // the host holds its own descriptors now
    arguments.clear();
    if (in_place) release_request(whole);
    if (g_host_unreachable) _exit(kExitLostHost);
  }

  // Hands a call that streams through the request ring to its InputArchive
  // piece by piece. A piece is released when the next is asked for (or by
  // release()): the host may be waiting for that space to send the rest.
  class RequestStream final : public ByteSource {
   public:
    explicit RequestStream(WorkerLoop& loop) noexcept : loop_(loop) {}
    std::span<const std::byte> next(size_t most) override {
      release();
      loop_.wait_readable(1, false);
      // What has come, up to the ring's end.
      std::span<const std::byte> piece = loop_.requests_.pieces(0, std::min(most, loop_.requests_.readable())).first;
      held_ = piece.size();
      return piece;
    }
    void release() {
      if (held_ > 0) loop_.release_request(held_);
      held_ = 0;
    }

   private:
    WorkerLoop& loop_;
    size_t held_ = 0;
  };

  FrameKind run_call(InputArchive& args, bool many, const std::exception_ptr& unreceived, ResponseWriter& writer) {
    const FunctionEntry* entry = nullptr;
    try {
      uint32_t id = 0;
      entry = &decode_call_target(args, id);
      if (config_.output == WorkerOutput::capture && id != marked_function_) mark_output(id);
      if (unreceived) {
        try {
          std::rethrow_exception(unreceived);
        } catch (const std::exception& e) {
          throw SerializationError(entry->name, std::string("its SharedBytes did not arrive: ") + e.what());
        }
      }
      OutputArchive result(writer, &results_);
      record_throw_backtraces(true);
      invoke_call(*entry, args, many, result);
      record_throw_backtraces(false);
      size_t size = writer.payload_size();
      if (size > config_.max_message_bytes)
        throw ResourceLimitExceeded("max_message_bytes", size, config_.max_message_bytes,
                                    "the result of '" + entry->name + "'");
      return FrameKind::Value;
    } catch (...) {
      std::string where = last_throw_backtrace();
      record_throw_backtraces(false);
      // Under a memory limit, an allocation the task did not survive is the
      // limit's doing: say so, with the limit (the worker goes on).
      if (config_.limits.memory && current_exception_is_bad_alloc())
        return answer_instead(writer,
                              ResourceLimitExceeded("memory", 0, *config_.limits.memory,
                                                    "'" + (entry ? entry->name : std::string("?")) +
                                                        "' ran out of memory: an allocation failed "
                                                        "(std::bad_alloc) under the worker's address-space limit"));
      return answer_with_current_exception(writer, where);
    }
  }

  // Tells the host, in both captured streams, that what follows was
  // written by calls of function `id` (worker_output.hpp).
  void mark_output(uint32_t id) noexcept {
    char marker[kOutputMarkerBytes + 1];
    std::snprintf(marker, sizeof marker, "%c%08x\n", kOutputMarker, id);
    std::fflush(stdout);  // the previous call's bytes go first
    for (int fd : {1, 2}) {
      ssize_t n;
      do n = ::write(fd, marker, kOutputMarkerBytes);
      while (n < 0 && errno == EINTR);
    }
    marked_function_ = id;
  }

  // Sends the descriptors of the result's SharedBytes ahead of the frame.
  // Waits while the socket is full: the host takes them as it reads the
  // answers ahead, which are published already. A result whose descriptors
  // cannot be sent becomes an exception saying why.
  FrameKind send_result_handles(TaskId task, ResponseWriter& writer) {
    for (const auto& memory : results_)
      if (memory->size() > config_.max_message_bytes) {
        // The host would refuse it (it caps what a worker may make it map).
        return answer_instead(writer, ResourceLimitExceeded("max_message_bytes", memory->size(),
                                                            config_.max_message_bytes, "a SharedBytes in the result"));
      }
    int err;
    while ((err = send_handles(config_.handle_socket, task, results_)) == EAGAIN) {
      pollfd p{config_.handle_socket, POLLOUT, 0};
      (void)::poll(&p, 1, -1);
    }
    if (err == 0) return FrameKind::Value;
    if (lost_the_host(err)) g_host_unreachable = true;
    return answer_instead(writer,
                          Error(std::string("the result's SharedBytes could not be sent to the host: sendmsg: ") +
                                detail::errno_text(err)));
  }

  // Replaces the result being written by the exception in flight.
  FrameKind answer_with_current_exception(ResponseWriter& writer, const std::string& backtrace) {
    results_.clear();
    writer.discard();
    error_.clear();
    encode_current_exception(error_, backtrace, config_.max_message_bytes);
    writer.write(error_.data(), error_.size());
    return FrameKind::Exception;
  }
  template <class E>
  FrameKind answer_instead(ResponseWriter& writer, const E& error) {
    try {
      throw error;
    } catch (...) {
      return answer_with_current_exception(writer, "");
    }
  }

  // Waits until n bytes are readable: spins for the configured budget (only
  // right after a task, when another is likely to follow), then sleeps on
  // the request ring's data_event.
  void wait_readable(size_t n, bool after_task) {
    if (requests_.readable() >= n) return;
    if (after_task && config_.spin.count() > 0) {
      auto now = std::chrono::steady_clock::now();
      // After a call that had to wake this worker, the caller is likely
      // waiting on this very CPU (the scheduler put the wakee beside its
      // waker): yield at once, so that it sees the answer now.
      // A slow yield (the CPU is contended: cpu_yield.hpp) ends the spin,
      // unless the host last wrote from another CPU: then the spin keeps
      // no partner off this one, and it goes on without yields, so that
      // the next call finds this worker awake (no futex wake, no relay of
      // the answer through the reactor) as the spin floor would.
      auto until = now + config_.spin, eager = woken_ ? now : now + kEagerSpin;
      woken_ = false;
      CpuYield& yield = CpuYield::this_thread();
      do {
        for (int i = 0; i < 64; ++i) {
          if (requests_.readable() >= n) return;
          cpu_relax();
        }
        now = std::chrono::steady_clock::now();
        if (now > eager && !yield.between_polls(now) && !host_elsewhere()) {
          // On the host's CPU: off it, and on with the spin; or, within
          // the step-aside's interval, asleep off it (step_aside.hpp).
          int host = host_cpu_.load(std::memory_order_relaxed);
          if (host >= 0 && step_aside_.away_from(host, now)) continue;
          // Off it only in a burst: a host that sent one call waits for
          // its answer, and its own CPU, which it will leave, is quicker
          // to wake on than an idle one.
          SleepAway away(in_burst_ ? host : -1);
          return sleep_for(n, after_task);
        }
      } while (now < until);
    }
    sleep_for(n, after_task);
  }

  void sleep_for(size_t n, bool after_task) {
    auto asleep = std::chrono::steady_clock::now();
    if (!sleep_until(requests_.header().data_event, [&] { return requests_.readable() >= n; })) return;
    woken_ = after_task;
    in_burst_ = std::chrono::steady_clock::now() - asleep < kShortSleep;
  }

  // Waits for the next call's header, timing the calls (CallPace).
  void await_call() {
    if (requests_.readable() >= sizeof(FrameHeader)) return pace_.next_was_waiting();
    wait_readable(sizeof(FrameHeader), /*after_task=*/true);
    pace_.begins_after_a_wait();
  }

  bool host_elsewhere() const noexcept {
    int host = host_cpu_.load(std::memory_order_relaxed);
    return host >= 0 && host != sched_getcpu();
  }

  void release_request(size_t n) {
    if (requests_.consume(n)) ring_doorbell();  // the host waits to stream more of a large call
  }

  // EAGAIN means the counter is already non-zero: the host will look.
  void ring_doorbell() noexcept { ring_host_doorbell(); }

  bool stop_requested() const noexcept { return stop_.requested.load(std::memory_order_acquire) != 0; }

  ControlBlock& control_;
  WithdrawnCalls withdrawn_;
  const StopRequest& stop_;
  const std::atomic<int32_t>& host_cpu_;  // HostCpu
  ByteRing requests_;
  ByteRing responses_;
  WorkerConfig config_;
  WorkerLives& lives_ = worker_lives();
  uint64_t started_ = 0;
  uint32_t marked_function_ = UINT32_MAX;  // the function the captured output was last marked with
  bool woken_ = false;                     // the call being served found this worker asleep
  bool in_burst_ = false;                  // its last sleep was shorter than kShortSleep
  CallPace pace_{control_.call_ns, control_.call_began_ns};
  StepAside step_aside_;
  ByteBuffer error_;    // an encoded exception
  HandleList results_;  // the SharedBytes of the result being written
};

}  // namespace

namespace {
WorkerSegment* g_segment = nullptr;
int g_doorbell_fd = -1;
int g_handle_socket = -1;
}  // namespace

WorkerSegment* current_worker_segment() noexcept { return g_segment; }
int current_handle_socket() noexcept { return g_handle_socket; }

void ring_host_doorbell() noexcept {
  uint64_t one = 1;
  // EAGAIN: the counter is full, the host will look anyway.
  if (g_doorbell_fd >= 0 && ::write(g_doorbell_fd, &one, sizeof one) < 0 && lost_the_host(errno))
    g_host_unreachable = true;
}

}  // namespace procpool::detail

namespace procpool::this_call {
bool stop_requested() noexcept {
  auto* segment = detail::current_worker_segment();
  return segment && segment->header().stop.requested.load(std::memory_order_acquire) != 0;
}
}  // namespace procpool::this_call

namespace procpool::detail {

void run_worker(WorkerSegment& segment, const WorkerConfig& config) {
  g_segment = &segment;
  g_doorbell_fd = config.doorbell_fd;
  g_handle_socket = config.handle_socket;
  WorkerLoop loop(segment, config);
  loop.run();
}

}  // namespace procpool::detail
