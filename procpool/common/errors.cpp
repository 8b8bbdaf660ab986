// SPDX-License-Identifier: MIT
#include <procpool/common/errors.hpp>

#include <signal.h>
#include <string.h>

namespace procpool {
namespace {

// "worker <pid> <doing> <how it ended>": `doing` is what it was running.
std::string crash_message(const std::string& doing, pid_t pid, int signal, int exit_code,
                          const std::vector<std::string>& last_output) {
  std::string how;
  if (signal != 0) {
    // Not strsignal: its buffer for an unknown signal is shared by every
    // thread. These two return static text, or null for an unknown signal.
    const char* abbrev = sigabbrev_np(signal);
    const char* description = sigdescr_np(signal);
    how = "killed by SIG" + std::string(abbrev ? abbrev : "?") + " (signal " + std::to_string(signal) + ", " +
          (description ? description : "unknown signal") + ")";
  } else if (exit_code >= 0) {
    how = "exited with code " + std::to_string(exit_code);
  } else {
    how =
        "died; its exit status was taken by someone else (is SIGCHLD ignored, or are children reaped "
        "with waitpid(-1)?)";
  }
  std::string message = "worker " + std::to_string(pid) + " " + doing + " " + how;
  if (!last_output.empty()) message += "; the last line it wrote: \"" + last_output.back() + "\"";
  return message;
}

std::string unknown_message(const std::string& name, const std::vector<std::string>& close) {
  std::string m = "no function registered as '" + name + "'";
  if (!close.empty()) {
    m += "; did you mean ";
    for (size_t i = 0; i < close.size(); ++i) m += (i ? ", '" : "'") + close[i] + "'";
    m += "?";
  }
  return m;
}

std::string limit_message(const std::string& limit, unsigned long long value, unsigned long long maximum,
                          const std::string& context) {
  if (value == 0) {
    // The amount is unknown (a worker killed by the kernel at the limit).
    const char* unit = limit == "cpu" ? " s" : (limit == "memory" || limit == "file_size") ? " bytes" : "";
    return context + " (limit " + limit + " = " + std::to_string(maximum) + unit + ")";
  }
  return context + ": " + std::to_string(value) + (limit.ends_with("_bytes") ? " bytes" : "") + " exceeds " + limit +
         " = " + std::to_string(maximum);
}

std::string violation_message(const std::string& function, pid_t pid, const std::string& syscall, int number,
                              const std::vector<std::string>& last_output) {
  std::string what = syscall.empty() ? std::string("a system call it could not record (SIGSYS was blocked or ignored)")
                                     : "the system call " + syscall + " (" + std::to_string(number) + ")";
  return "worker " + std::to_string(pid) + " running '" + function + "' made " + what +
         ", which its sandbox forbids: killed by SIGSYS; the worker was replaced" +
         (last_output.empty() ? std::string() : "; the last line it wrote: \"" + last_output.back() + "\"");
}

}  // namespace

WorkerCrashed::WorkerCrashed(const std::string& function, pid_t pid, int signal, int exit_code, std::string backtrace,
                             const std::vector<std::string>& last_output)
    : WorkerCrashed(crash_message("running '" + function + "'", pid, signal, exit_code, last_output), function, pid,
                    signal, exit_code, std::move(backtrace), last_output) {}

WorkerCrashed WorkerCrashed::before_ready(const std::string& initializer, pid_t pid, int signal, int exit_code,
                                          std::string backtrace) {
  std::string doing =
      initializer.empty() ? std::string("setting itself up") : "running '" + initializer + "' (the initializer)";
  return WorkerCrashed(crash_message(doing, pid, signal, exit_code, {}) + " before it was ready", initializer, pid,
                       signal, exit_code, std::move(backtrace), {});
}

WorkerCrashed::WorkerCrashed(const std::string& message, std::string function, pid_t pid, int signal, int exit_code,
                             std::string backtrace, std::vector<std::string> last_output)
    : Error(message), function_(std::move(function)), pid_(pid), signal_(signal), exit_code_(exit_code),
      backtrace_(std::move(backtrace)), last_output_(std::move(last_output)) {}

TaskTimeout::TaskTimeout(std::string function, std::chrono::milliseconds deadline, pid_t pid)
    : Error("'" + function + "' did not finish within its deadline of " + std::to_string(deadline.count()) +
            " ms in worker " + std::to_string(pid) + ", which was killed and replaced"),
      function_(std::move(function)), deadline_(deadline), pid_(pid) {}

CrashLoopDetected::CrashLoopDetected(std::string function, unsigned crashes, std::chrono::milliseconds window,
                                     std::chrono::milliseconds cooldown)
    : Error("'" + function + "' killed " + std::to_string(crashes) + " workers in a row within " +
            std::to_string(window.count()) + " ms: its calls fail without running for " +
            std::to_string(cooldown.count()) + " ms (crash_loop)"),
      function_(std::move(function)), crashes_(crashes), cooldown_(cooldown) {}

UnknownFunction::UnknownFunction(std::string name, std::vector<std::string> close_matches)
    : Error(unknown_message(name, close_matches)), name_(std::move(name)), close_(std::move(close_matches)) {}

UnknownFunction::UnknownFunction(Worded, const std::string& message, std::string name)
    : Error(message), name_(std::move(name)) {}

UnknownFunction UnknownFunction::unregistered(std::string what) {
  std::string message = what + " is not registered: add PROCPOOL_REGISTER(fn) next to its definition";
  return UnknownFunction(Worded{}, message, std::move(what));
}

SerializationError::SerializationError(std::string function, const std::string& detail)
    : Error("'" + function + "': " + detail), function_(std::move(function)), detail_(detail) {}

ProtocolError::ProtocolError(pid_t pid, std::string function, const std::string& detail)
    : Error("worker " + std::to_string(pid) + " broke the protocol while running '" + function + "': " + detail +
            " (the worker was killed)"),
      pid_(pid), function_(std::move(function)) {}

ResourceLimitExceeded::ResourceLimitExceeded(std::string limit, unsigned long long value, unsigned long long maximum,
                                             const std::string& context)
    : Error(limit_message(limit, value, maximum, context)), limit_(std::move(limit)), value_(value), maximum_(maximum),
      context_(context) {}

PoolFull::PoolFull(unsigned long long would_hold, unsigned long long max_pending, const std::string& function)
    : ResourceLimitExceeded("max_pending", would_hold, max_pending,
                            "the pool is full: calls held with this call of '" + function + "'") {}

SandboxViolation::SandboxViolation(const std::string& function, pid_t pid, std::string syscall, int syscall_number,
                                   std::string backtrace, const std::vector<std::string>& last_output)
    : WorkerCrashed(violation_message(function, pid, syscall, syscall_number, last_output), function, pid, SIGSYS, -1,
                    std::move(backtrace), last_output),
      syscall_(std::move(syscall)), syscall_number_(syscall_.empty() ? -1 : syscall_number) {}

RemoteOrigin::RemoteOrigin(std::string type_name, std::string message, std::string function, pid_t pid,
                           std::string backtrace)
    : type_name_(std::move(type_name)), message_(std::move(message)), function_(std::move(function)), pid_(pid),
      backtrace_(std::move(backtrace)) {}

namespace {
// An object thrown with no text (a struct that is no std::exception, or
// one whose what() is empty): say so, rather than end in ": ".
std::string remote_what(const RemoteOrigin& origin) {
  if (origin.message().empty()) return origin.type_name() + " (no message)";
  return origin.type_name() + ": " + origin.message();
}
}  // namespace

RemoteError::RemoteError(RemoteOrigin origin) : Error(remote_what(origin)), RemoteOrigin(std::move(origin)) {}

}  // namespace procpool
