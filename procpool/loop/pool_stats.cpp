// SPDX-License-Identifier: MIT
// What the pool has done (counters_, counted as calls settle: the outcomes
// by OutcomeCounters, shared with MpiPool) and where a call is
// (status_of), for ProcessPool::stats() and Future::status().
#include <procpool/loop/pool_core.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include <procpool/common/errors.hpp>
#include <procpool/common/statm.hpp>
#include <procpool/common/unique_fd.hpp>

namespace procpool::detail {
namespace {

// Resident bytes of a live child, from /proc/<pid>/statm (pages); 0 if it
// cannot be read.
uint64_t resident_bytes(pid_t pid) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/statm", static_cast<int>(pid));
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  return fd.get() < 0 ? 0 : statm_resident_bytes(fd.get());
}

}  // namespace

void OutcomeCounters::count(const StateBase& state) noexcept {
  auto bump = [](std::atomic<uint64_t>& c) { c.fetch_add(1, std::memory_order_relaxed); };
  std::exception_ptr error = state.error();
  if (!error) return bump(succeeded);
  // Failures are the rare path: a rethrow to learn the type is affordable.
  try {
    std::rethrow_exception(error);
  } catch (const TaskTimeout&) {
    bump(timed_out);
  } catch (const TaskCancelled&) {
    bump(cancelled);
  } catch (const WorkerCrashed&) {
    bump(crashed);
  } catch (const ProtocolError&) {
    bump(protocol_errors);
  } catch (const ResourceLimitExceeded&) {
    bump(limit_exceeded);
  } catch (const PoolShutdown&) {
    bump(shut_down);
  } catch (const RemoteError&) {
    bump(raised);  // the task's own exception, of a type the host does not know
  } catch (const Error&) {
    bump(other_errors);
  } catch (...) {
    bump(raised);
  }
}

void OutcomeCounters::report(PoolStats& s) const noexcept {
  auto get = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  s.submitted = get(submitted);
  s.succeeded = get(succeeded);
  s.raised = get(raised);
  s.crashed = get(crashed);
  s.timed_out = get(timed_out);
  s.cancelled = get(cancelled);
  s.protocol_errors = get(protocol_errors);
  s.limit_exceeded = get(limit_exceeded);
  s.shut_down = get(shut_down);
  s.other_errors = get(other_errors);
}

void PoolCore::count_outcome(const StateBase& state) noexcept { counters_.count(state); }

CallStatus PoolCore::status_of(const StateBase& state) {
  refuse_in_another_process("Future::status()");
  std::lock_guard lock(dispatch_mutex_);
  const StateBase::PoolPlace& place = state.place;
  if (place.task_id == 0 || place.slot < 0) return {};
  WorkerSlot& slot = *slots_[static_cast<size_t>(place.slot)];
  if (!slot.alive || slot.assigned.empty() || slot.assigned.front().id != place.task_id) return {};
  // The front call has begun once the worker's count of begun calls passes
  // the answers read (acquire: pairs with the worker's release store).
  if (slot.segment->control().started.load(std::memory_order_acquire) > slot.answered)
    return {CallState::running, slot.pid};
  return {};
}

PoolStats PoolCore::stats() {
  refuse_in_another_process("ProcessPool::stats()");
  PoolStats s;
  auto get = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  counters_.report(s);
  s.worker_deaths = get(counters_.worker_deaths);
  s.respawns = get(counters_.respawns);
  s.spares_taken = get(counters_.spares_taken);
  s.stolen = get(counters_.stolen);
  s.retired_after_max_tasks = get(retired_served_);
  s.retired_over_memory = get(retired_memory_);
  auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard dispatch(dispatch_mutex_);
    s.queued = pending_.size();
    s.spare_workers = spares_.size();
    for (auto& slot : slots_) {
      s.in_flight += slot->assigned.size();
      WorkerStats w;
      w.index = slot->index;
      w.calls_held = slot->assigned.size();
      if (slot->alive) {
        w.pid = slot->pid;
        w.calls_answered = slot->answered;
      }
      s.workers.push_back(w);
    }
  }
  // Processes are reaped under the drain mutex: while it is held, a pid
  // still in its slot names that worker, not a stranger that reused it.
  std::lock_guard drain(drain_mutex_);
  for (auto& w : s.workers) {
    const WorkerSlot& slot = *slots_[w.index];
    if (w.pid == 0 || !slot.alive || slot.pid != w.pid) continue;
    // Under Namespaces::pid the slot's process is a keeper; the worker's
    // own figure is its grandchild's (a pid the worker could forge, which
    // only ever costs a wrong figure).
    pid_t serving = slot.segment->control().serving_pid.load(std::memory_order_relaxed);
    w.rss_bytes = resident_bytes(serving > 0 ? serving : w.pid);
    w.age = now - slot.forked_at;
    w.pace = std::chrono::nanoseconds(slot.segment->control().call_ns.load(std::memory_order_relaxed));
  }
  return s;
}

}  // namespace procpool::detail
