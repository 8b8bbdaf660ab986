// SPDX-License-Identifier: MIT
#include <procpool/mpi/mpi_pool.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>

#include <procpool/mpi/host_link.hpp>
#include <procpool/mpi/protocol.hpp>
#include <procpool/mpi/session.hpp>
#include <procpool/mpi/shared_bytes_section.hpp>

namespace procpool::mpi {
namespace detail {

bool PoolTally::admit() {
  std::lock_guard lock(mutex_);
  if (!accepting_) return false;
  ++unsettled_;
  return true;
}

void PoolTally::release() {
  std::lock_guard lock(mutex_);
  if (--unsettled_ == 0) idle_.notify_all();
}

void PoolTally::close() {
  std::lock_guard lock(mutex_);
  accepting_ = false;
}

void PoolTally::wait_idle() {
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [&] { return unsettled_ == 0; });
}

bool admit(const std::shared_ptr<PoolCore>& core, procpool::detail::StateBase& state, const std::string& function,
           procpool::detail::Admission admission) {
  using Outcome = procpool::detail::Backpressure::Outcome;
  if (!core->tally.admit()) {
    state.settle_error(std::make_exception_ptr(PoolShutdown("the MpiPool is shut down; no new calls are accepted")));
    return false;
  }
  // Once ready, not before (before_ready): shutdown(true) returns when
  // every call it waited for is ready.
  state.on_ready_anywhere([core] { core->tally.release(); });
  if (!core->room || admission == procpool::detail::Admission::Reserved) return true;
  procpool::detail::Backpressure& room = *core->room;
  Outcome got = admission == procpool::detail::Admission::Try ? room.try_acquire()
                : core->link->on_link_thread()                ? room.acquire_over_bound()  // it cannot wait for itself
                                                              : room.acquire();
  if (got == Outcome::Closed) {
    state.settle_error(std::make_exception_ptr(PoolShutdown("the MpiPool is shut down; no new calls are accepted")));
    return false;
  }
  if (got == Outcome::Full) {
    state.settle_error(std::make_exception_ptr(PoolFull(room.held() + 1, room.limit(), function)));
    return false;
  }
  room.release_when_settled(state);
  return true;
}

void count(const std::shared_ptr<PoolCore>& core, procpool::detail::StateBase& state) {
  core->counters.submitted.fetch_add(1, std::memory_order_relaxed);
  // Before it is ready: a stats() after get() returned counts it.
  state.before_ready([core, settled = &state] { core->counters.count(*settled); });
}

void send_call(HostLink& link, procpool::detail::ByteBuffer frame, const procpool::detail::HandleList& handles,
               procpool::detail::FrameKind kind, const procpool::detail::FunctionEntry& entry,
               const CallOptions& options, std::shared_ptr<procpool::detail::StateBase> state) {
  size_t payload = frame.size() - sizeof(procpool::detail::FrameHeader);
  size_t shared = shared_bytes_section_size(handles) - handles.size() * sizeof(uint64_t);
  if (!handles.empty() && payload + shared > link.max_message_bytes()) {
    state->settle_error(
        std::make_exception_ptr(ResourceLimitExceeded("max_message_bytes", payload + shared, link.max_message_bytes(),
                                                      "the call of '" + entry.name +
                                                          "' with the bytes of its SharedBytes (they cross MPI "
                                                          "as bytes)")));
    return;
  }
  CallTrailer trailer{};
  if (options.timeout) {
    trailer.flags |= kHasTimeout;
    trailer.timeout_ms = static_cast<uint32_t>(std::clamp<int64_t>(options.timeout->count(), 0, UINT32_MAX));
  }
  bool cancel_running = options.cancel_running.value_or(link.cancel_running());
  trailer.flags |= kHasCancelRunning | (cancel_running ? kCancelRunning : 0);
  if (options.measure_usage) trailer.flags |= kHasMeasure | (*options.measure_usage ? kMeasure : 0);
  try {
    append_shared_bytes(frame, handles);
    frame.append(&trailer, sizeof trailer);
  } catch (...) {
    state->settle_error(std::current_exception());  // out of memory
    return;
  }
  link.submit(std::move(frame), handles.size(), kind, entry, cancel_running, std::move(state));
}

void watch(HostLink& link, procpool::detail::StateBase& state) { link.watch(state); }

}  // namespace detail

MpiPool::MpiPool(MpiPoolOptions options) : core_(std::make_shared<detail::PoolCore>()) {
  core_->link = &detail::host_link();
  core_->max_message_bytes = core_->link->max_message_bytes();
  if (options.max_pending) core_->room = std::make_shared<procpool::detail::Backpressure>(options.max_pending);
  if (core_->link->agents().empty())
    throw Error("an MpiPool needs agents: start the program with mpirun -np N (N >= 2); rank 0 is the host");
}

MpiPool::~MpiPool() {
  // On the link thread nobody can wait: the calls still settle, later.
  try {
    shutdown(!core_->link->on_link_thread());
  } catch (const std::exception& e) {
    // Out of memory while waiting: nobody to tell but stderr.
    std::fprintf(stderr, "procpool::mpi: ~MpiPool: %s\n", e.what());
  }
}

void MpiPool::shutdown(bool wait) {
  core_->tally.close();
  if (core_->room) core_->room->close();  // refuses the submits waiting for room
  if (!wait) return;
  if (core_->link->on_link_thread())
    throw Error("MpiPool::shutdown(true) in a callback of the pool would wait for itself: use shutdown(false)");
  core_->tally.wait_idle();
}

PoolStats MpiPool::stats() const {
  PoolStats s;
  core_->counters.report(s);
  detail::HostLink::Load load = core_->link->load();
  s.queued = load.queued;
  s.in_flight = load.in_flight;
  return s;
}

std::vector<AgentInfo> MpiPool::agents() const { return core_->link->agents(); }

size_t MpiPool::worker_count() const {
  size_t n = 0;
  for (const AgentInfo& a : core_->link->agents()) n += a.workers;
  return n;
}

}  // namespace procpool::mpi
