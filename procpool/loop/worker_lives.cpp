// SPDX-License-Identifier: MIT
// Workers' lives, the host's side (DESIGN.md, "Workers' lives"): failed
// starts counted to PoolBroken, and the deaths that resource limits cause
// turned into ResourceLimitExceeded. Called from on_death
// (worker_supervision.cpp) once the worker is reaped: what it wrote in its
// ControlBlock is then all there (see the block's comments), and is read
// as a hint, range-checked.
#include <procpool/loop/pool_core.hpp>

#include <signal.h>

#include <algorithm>
#include <cstring>

#include <procpool/common/backtrace.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/common/exception_codec.hpp>
#include <procpool/common/type_name.hpp>

namespace procpool::detail {
namespace {

// "std::runtime_error: no model file", as the exception was thrown.
std::string describe_exception(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    if (auto* origin = dynamic_cast<const RemoteOrigin*>(&x)) return origin->type_name() + ": " + origin->message();
    return demangle(typeid(x).name()) + ": " + x.what();
  } catch (...) {
    return "a non-standard exception";
  }
}

}  // namespace

std::string PoolCore::describe_failed_start(ControlBlock& control, pid_t pid, bool start_timed_out, int sig, int code,
                                            std::exception_ptr& cause) const {
  bool initializing = control.initializing.load(std::memory_order_relaxed) != 0;
  std::string initializer = "'" + options_.initializer.function() + "' (the initializer)";
  std::string who = "worker " + std::to_string(pid);
  if (start_timed_out) {
    return who + " did not say it was ready within " + std::to_string(options_.start_timeout.count()) +
           " ms (start_timeout) and was killed; " +
           (initializing ? initializer + " was still running"
                         : std::string("a fork taken while another thread of the host held a lock can block the "
                                       "child for ever"));
  }
  if (code == kExitInitializerFailed) {
    size_t n = std::min<size_t>(control.startup_error_bytes.load(std::memory_order_relaxed), kStartupErrorBytes);
    try {
      InputArchive in(reinterpret_cast<const std::byte*>(control.startup_error), n);
      cause = decode_exception(in, options_.initializer.function(), pid);
    } catch (...) {
      cause = std::make_exception_ptr(Error("an exception whose record did not decode"));
    }
    return who + " could not start: " + initializer + " threw " + describe_exception(cause);
  }
  if (code == kExitSetupFailed) {
    std::string why(control.setup_error, strnlen(control.setup_error, sizeof control.setup_error));
    return who + " could not set itself up (" + (why.empty() ? std::string("exit code 121") : why) + ")";
  }
  // Killed, or exited, before it was ready.
  std::string where = sig != 0 ? symbolize_crash(control) : std::string();
  WorkerCrashed crash = WorkerCrashed::before_ready(initializing ? options_.initializer.function() : std::string(), pid,
                                                    sig, code, where);
  cause = std::make_exception_ptr(crash);
  return crash.what();
}

// What "in a row" means when starts overlap (every slot's, and spares'):
// the host learns their outcomes (a success when it sees `ready`, a
// failure when it reaps the worker) in an order that need not be theirs.
// A worker whose initializer failed may be reaped only after one whose
// initializer ran later was seen ready; counted then, its failure and the
// next one would make a row around that success. So a row is of starts
// begun after the host last saw one succeed: a failure extends it only if
// its worker's fork began (forked_at) after last_start_seen_, and one begun
// before is older news than that success. Before a failure is counted the
// host looks at every worker still starting, so a success there already
// is seen first.
std::exception_ptr PoolCore::count_start_locked(ControlBlock& control, pid_t pid,
                                                std::chrono::steady_clock::time_point forked_at, bool seen_ready,
                                                bool start_timed_out, bool served, int sig, int code) {
  note_starts_locked();
  bool was_ready = control.ready.load(std::memory_order_relaxed) != 0;
  bool failed =
      !served && (!was_ready || start_timed_out || code == kExitSetupFailed || code == kExitInitializerFailed);
  if (!failed) {
    // A success seen only now, at its death. One seen earlier keeps the
    // time it was seen: the failures of starts begun since still count.
    if (!seen_ready) last_start_seen_ = std::chrono::steady_clock::now();
    end_failed_row_locked();
    return nullptr;
  }
  if (start_error_) return nullptr;  // broken already
  std::exception_ptr cause;
  std::string why = describe_failed_start(control, pid, start_timed_out, sig, code, cause);
  if (forked_at > last_start_seen_) ++failed_starts_;
  if (failed_starts_ < max_failed_starts()) return nullptr;
  // At the limit, no slot forks again (fork_wanted_locked) until the row
  // is decided: a worker forked before this one and still starting may
  // yet start (starts overlap: slots and spares), which ends the row. The
  // last of them to fail decides it, even one too old to be counted.
  if (start_pending_locked()) return nullptr;
  PoolBroken broken(
      "the pool is broken: " +
      (failed_starts_ == 1 ? std::string("a worker") : std::to_string(failed_starts_) + " workers in a row") +
      " failed to start (max_failed_starts); the last: " + why +
      ". No worker is started again; every pending and later call fails with this error");
  if (!cause) return std::make_exception_ptr(std::move(broken));
  // The cause, nested: std::rethrow_if_nested gives it back as its type.
  try {
    std::rethrow_exception(cause);
  } catch (...) {
    return as_raised(std::move(broken), true);
  }
}

bool PoolCore::start_pending_locked() const {
  return std::any_of(slots_.begin(), slots_.end(),
                     [](auto& s) { return s->alive && !s->ready && !s->start_timed_out; }) ||
         std::any_of(spares_.begin(), spares_.end(), [](auto& s) { return !s.ready && !s.start_timed_out; });
}

void PoolCore::end_failed_row_locked() {
  if (std::exchange(failed_starts_, 0) > 0) wake_forker();  // spares, and slots held at the limit
}

std::exception_ptr PoolCore::limit_death_error(const TaskRecord& task, WorkerSlot& slot, int sig, int code) const {
  const ResourceLimits& limits = options_.limits;
  std::string who = "worker " + std::to_string(slot.pid) + " running '" + function_name(task.function_id) + "'";
  if (sig == SIGXCPU && limits.cpu)
    return std::make_exception_ptr(
        ResourceLimitExceeded("cpu", 0, static_cast<unsigned long long>(limits.cpu->count()),
                              who + " was killed by SIGXCPU: the call used up its CPU time; the worker was replaced"));
  if (sig == SIGXFSZ && limits.file_size)
    return std::make_exception_ptr(ResourceLimitExceeded(
        "file_size", 0, *limits.file_size,
        who + " was killed by SIGXFSZ: it wrote past the file size limit; the worker was replaced"));
  if (limits.memory && slot.segment->control().allocation_failed.load(std::memory_order_relaxed) != 0) {
    WorkerCrashed crash(function_name(task.function_id), slot.pid, sig, code, "");
    return std::make_exception_ptr(
        ResourceLimitExceeded("memory", 0, *limits.memory,
                              "an allocation failed under the worker's address-space limit, then " +
                                  std::string(crash.what()) + "; the worker was replaced"));
  }
  return nullptr;
}

void PoolCore::note_killing_call_locked(uint32_t function_id) {
  auto now = std::chrono::steady_clock::now();
  CrashStreak& streak = crash_streaks_[function_id];
  if (streak.kills == 0 || now - streak.first > options_.crash_loop.window) {
    streak.kills = 0;
    streak.first = now;
  }
  if (++streak.kills < options_.crash_loop.count) return;
  streak.kills = 0;  // counted afresh after the cool-down
  streak.open_until = now + options_.crash_loop.cooldown;
}

bool PoolCore::refuse_crash_looping_locked(TaskRecord& task, Published& out) {
  auto it = crash_streaks_.find(task.function_id);
  if (it == crash_streaks_.end() || it->second.open_until <= std::chrono::steady_clock::now()) return false;
  task.state->place.slot = -1;
  if (task.state->try_claim()) {
    task.state->set_error(
        std::make_exception_ptr(CrashLoopDetected(function_name(task.function_id), options_.crash_loop.count,
                                                  options_.crash_loop.window, options_.crash_loop.cooldown)));
    out.push_back(std::move(task.state));
  }
  return true;
}

}  // namespace procpool::detail
