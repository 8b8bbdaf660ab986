// SPDX-License-Identifier: MIT
#pragma once
// The errors procpool itself raises. Every one derives from procpool::Error
// (itself a std::runtime_error) and carries what a user needs to act on it.
#include <sys/types.h>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

namespace procpool {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The worker process running the task died (signal or exit) before answering.
class WorkerCrashed : public Error {
 public:
  WorkerCrashed(const std::string& function, pid_t pid, int signal, int exit_code, std::string backtrace,
                const std::vector<std::string>& last_output = {});
  // A worker that died before it was ready: running `initializer` (its
  // function's name, then function()), or, if that is empty, setting
  // itself up.
  static WorkerCrashed before_ready(const std::string& initializer, pid_t pid, int signal, int exit_code,
                                    std::string backtrace);
  const std::string& function() const noexcept { return function_; }
  // The last lines the worker wrote to stdout and stderr, oldest first, when
  // the pool captures its output (PoolOptions::worker_output); else empty.
  // In order within each stream; across the two (separate pipes) in the
  // order they were read, so lines both held unread at the death come
  // stdout's first.
  const std::vector<std::string>& last_output() const noexcept { return last_output_; }
  pid_t pid() const noexcept { return pid_; }
  int signal() const noexcept { return signal_; }        // 0 when the worker exited
  int exit_code() const noexcept { return exit_code_; }  // -1 when it was killed by a signal
  const std::string& backtrace() const noexcept { return backtrace_; }

 protected:
  // For a subclass that says more of the death than the signal.
  WorkerCrashed(const std::string& message, std::string function, pid_t pid, int signal, int exit_code,
                std::string backtrace, std::vector<std::string> last_output);

 private:
  std::string function_;
  pid_t pid_;
  int signal_;
  int exit_code_;
  std::string backtrace_;
  std::vector<std::string> last_output_;
};

// A deadline passed. From a pool call's deadline (CallOptions::timeout,
// PoolOptions::timeout): the call ran past it and its worker was stopped;
// function(), deadline() and pid() say which call, which deadline and which
// worker. From a wait (the event loop's wait_for): only the text is set
// (empty function, zero deadline and pid), and nothing was stopped.
class TaskTimeout : public Error {
 public:
  using Error::Error;
  TaskTimeout(std::string function, std::chrono::milliseconds deadline, pid_t pid);
  const std::string& function() const noexcept { return function_; }
  std::chrono::milliseconds deadline() const noexcept { return deadline_; }
  pid_t pid() const noexcept { return pid_; }

 private:
  std::string function_;
  std::chrono::milliseconds deadline_{0};
  pid_t pid_ = 0;
};

// The call was cancelled: withdrawn before it ran, or stopped while it ran
// (Future::cancel with cancel_running), or the task awaiting was cancelled.
class TaskCancelled : public Error {
 public:
  using Error::Error;
};

// The event loop's main task was cancelled by SIGINT (Ctrl-C), as Python's
// asyncio.run raises KeyboardInterrupt.
class KeyboardInterrupt : public TaskCancelled {
 public:
  using TaskCancelled::TaskCancelled;
};

// The pool was shut down (or destroyed) before the task finished.
class PoolShutdown : public Error {
 public:
  using Error::Error;
};

// Workers kept failing to start (PoolOptions::max_failed_starts in a row:
// set-up, initializer, start_timeout): the pool forks no more, and every
// pending and later call fails with this. what() names the last cause;
// when it was an exception the initializer threw, that exception is nested
// (std::rethrow_if_nested, as its own type when it crosses as one).
class PoolBroken : public Error {
 public:
  using Error::Error;
};

// PoolOptions::crash_loop: the function's calls killed `crashes()` workers
// in a row; its calls fail at once, without running, until the cool-down
// ends.
class CrashLoopDetected : public Error {
 public:
  CrashLoopDetected(std::string function, unsigned crashes, std::chrono::milliseconds window,
                    std::chrono::milliseconds cooldown);
  const std::string& function() const noexcept { return function_; }
  unsigned crashes() const noexcept { return crashes_; }
  std::chrono::milliseconds cooldown() const noexcept { return cooldown_; }

 private:
  std::string function_;
  unsigned crashes_;
  std::chrono::milliseconds cooldown_;
};

// No function is registered under that name (or that function pointer).
class UnknownFunction : public Error {
 public:
  UnknownFunction(std::string name, std::vector<std::string> close_matches);
  // A function passed by pointer that no PROCPOOL_REGISTER named: `what`
  // says which ("the function at 0x...", then name()).
  static UnknownFunction unregistered(std::string what);
  const std::string& name() const noexcept { return name_; }
  const std::vector<std::string>& close_matches() const noexcept { return close_; }

 private:
  struct Worded {};
  UnknownFunction(Worded, const std::string& message, std::string name);
  std::string name_;
  std::vector<std::string> close_;
};

// Arguments or a result could not be encoded or decoded (including a call by
// name whose argument types differ from the registered signature).
class SerializationError : public Error {
 public:
  SerializationError(std::string function, const std::string& detail);
  const std::string& function() const noexcept { return function_; }
  const std::string& detail() const noexcept { return detail_; }

 private:
  std::string function_;
  std::string detail_;
};

// A worker wrote something that is not a valid frame; it was killed.
class ProtocolError : public Error {
 public:
  ProtocolError(pid_t pid, std::string function, const std::string& detail);
  pid_t pid() const noexcept { return pid_; }
  const std::string& function() const noexcept { return function_; }

 private:
  pid_t pid_;
  std::string function_;
};

// A configured limit was exceeded (e.g. "max_message_bytes"; "memory",
// "cpu", "file_size" for PoolOptions::limits). value() is 0 when the amount
// is unknown (a worker killed by SIGXCPU): what() then gives the limit only.
class ResourceLimitExceeded : public Error {
 public:
  ResourceLimitExceeded(std::string limit, unsigned long long value, unsigned long long maximum,
                        const std::string& context);
  const std::string& limit() const noexcept { return limit_; }
  unsigned long long value() const noexcept { return value_; }
  unsigned long long maximum() const noexcept { return maximum_; }
  const std::string& context() const noexcept { return context_; }

 private:
  std::string limit_;
  unsigned long long value_;
  unsigned long long maximum_;
  std::string context_;
};

// A non-blocking submit (try_submit, try_call) found the pool holding
// PoolOptions::max_pending calls already: limit() is "max_pending",
// maximum() the bound, value() the calls that admitting this one would make.
class PoolFull : public ResourceLimitExceeded {
 public:
  PoolFull(unsigned long long would_hold, unsigned long long max_pending, const std::string& function);
};

// The task made a system call its sandbox (PoolOptions::sandbox) answers
// with kill: the worker died by SIGSYS and was replaced. A worker death, so
// `catch (const WorkerCrashed&)` takes it too (signal() is SIGSYS,
// backtrace() where the call was made). syscall() names it ("ptrace");
// empty, with syscall_number() -1, when the worker died by SIGSYS without
// recording which (a task that blocked SIGSYS: the kernel forced it).
class SandboxViolation : public WorkerCrashed {
 public:
  SandboxViolation(const std::string& function, pid_t pid, std::string syscall, int syscall_number,
                   std::string backtrace, const std::vector<std::string>& last_output = {});
  const std::string& syscall() const noexcept { return syscall_; }
  int syscall_number() const noexcept { return syscall_number_; }

 private:
  std::string syscall_;
  int syscall_number_;
};

// What the host knows of an exception it could not rebuild as its exact
// type: the type the worker threw, its text, and where. A mixin, not an
// exception: RemoteError carries it, and so does the stand-in for a type
// rebuilt as its nearest standard base (an unregistered
// `struct LocalError : std::out_of_range` arrives as a std::out_of_range
// that is also a RemoteOrigin), so `catch (const std::out_of_range& e)`
// takes it and `dynamic_cast<const RemoteOrigin*>(&e)` tells its origin.
class RemoteOrigin {
 public:
  RemoteOrigin(std::string type_name, std::string message, std::string function, pid_t pid, std::string backtrace);
  // Declared because the destructor is, which would otherwise leave only
  // the copies.
  RemoteOrigin(const RemoteOrigin&) = default;
  RemoteOrigin(RemoteOrigin&&) noexcept = default;
  RemoteOrigin& operator=(const RemoteOrigin&) = default;
  RemoteOrigin& operator=(RemoteOrigin&&) noexcept = default;
  virtual ~RemoteOrigin() = default;
  const std::string& type_name() const noexcept { return type_name_; }  // as thrown, e.g. "LocalError"
  // what() in the worker; the text of a thrown std::string or string literal.
  const std::string& message() const noexcept { return message_; }
  const std::string& function() const noexcept { return function_; }  // the registered function that threw
  pid_t pid() const noexcept { return pid_; }                         // of the worker that ran it
  const std::string& backtrace() const noexcept { return backtrace_; }

 private:
  std::string type_name_;
  std::string message_;
  std::string function_;
  pid_t pid_;
  std::string backtrace_;
};

// The task threw something with no standard base that is not registered
// (`throw 42;`, `throw std::string(...)` too), or whose fields failed to
// cross: its type name, message, function, pid and backtrace survive.
class RemoteError : public Error, public RemoteOrigin {
 public:
  explicit RemoteError(RemoteOrigin origin);
};

}  // namespace procpool
