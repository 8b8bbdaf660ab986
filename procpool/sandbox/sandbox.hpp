// SPDX-License-Identifier: MIT
#pragma once
// PoolOptions::sandbox: what a worker may do once it is set up. Off by
// default. A sandboxed worker sets PR_SET_NO_NEW_PRIVS, works in "/", gets
// a scrubbed (or the given) environment, then installs a seccomp filter
// (and, for read_only_files, a Landlock ruleset) after its initializer and
// before it takes its first call. README.md, "Sandbox", lists what each
// profile allows; DESIGN.md, "Sandbox", how it is built.
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace procpool {

class Sandbox {
 public:
  // What a syscall outside the profile does. kill: the worker dies by
  // SIGSYS, its call fails with SandboxViolation naming the syscall, and the
  // worker is replaced. errno_(e): the syscall returns -1 with errno e and
  // the task goes on.
  struct Action {
    enum class Kind { kill, error };
    Kind kind = Kind::kill;
    int error_number = 0;
    static const Action kill;
    static constexpr Action errno_(int error_number) noexcept { return {Kind::error, error_number}; }
    friend bool operator==(const Action&, const Action&) = default;
  };

  // Off: the worker runs as the host's fork, unconfined.
  Sandbox() = default;

  // Computation on what the call brought: memory management (never making
  // memory executable: mmap, mprotect and pkey_mprotect with PROT_EXEC take
  // `otherwise`), futexes, threads (clone with CLONE_THREAD), signals to
  // itself, time, sleeping,
  // read/write/close on descriptors it holds (the pool's own, SharedBytes
  // received), SharedBytes made and passed, exit. No open, no socket, no
  // exec, no process creation, no ptrace, no signals to other processes.
  // Anything else takes `otherwise`.
  static Sandbox compute_only(Action otherwise = Action::kill);
  // compute_only, plus opening files and listing directories beneath the
  // given absolute paths, read-only. The paths are enforced by Landlock
  // (Linux 5.13+; the pool refuses to start where the kernel has none); the
  // read-only flags by the seccomp filter, which sees arguments but not
  // the path strings. Opening elsewhere fails with EACCES (Landlock's
  // answer, not a violation); opening for writing takes `otherwise`.
  // stat and access of a path answer only where an open would (beneath
  // the paths; EACCES elsewhere); readlink, and opening with O_PATH, fail
  // with EACCES everywhere.
  static Sandbox read_only_files(std::vector<std::string> paths, Action otherwise = Action::kill);

  // Allows a syscall, by its name for this architecture ("getcwd"), with
  // any arguments: it overrides the profile's own conditions (allow("clone")
  // lets the task fork). Unknown names are refused when a pool is made.
  Sandbox& allow(const std::string& syscall);
  // Lets tasks make memory executable: JITs, libffi closures, dlopen under
  // read_only_files. Off in every profile: with it, code the task writes can
  // run, and the filter is then its only fence. The same as allow() of
  // mmap, mprotect and pkey_mprotect (any arguments), which is how it
  // travels to a forkserver or spawn worker.
  Sandbox& allow_executable_memory();
  // Gives a syscall its own action, whatever the profile says of it.
  Sandbox& deny(const std::string& syscall, Action action = Action::kill);
  // The environment of the sandboxed worker ("NAME=value" each); the
  // default is an empty one.
  Sandbox& environment(std::vector<std::string> variables);

  bool enabled() const noexcept { return enabled_; }
  Action otherwise() const noexcept { return otherwise_; }
  bool executable_memory() const;
  const std::set<std::string>& allowed() const noexcept { return allowed_; }
  const std::map<std::string, Action>& denied() const noexcept { return denied_; }
  const std::vector<std::string>& readable_paths() const noexcept { return readable_paths_; }
  const std::vector<std::string>& variables() const noexcept { return variables_; }

 private:
  bool enabled_ = false;
  Action otherwise_{};
  std::set<std::string> allowed_;         // with any arguments
  std::map<std::string, Action> denied_;  // each with its own action
  std::vector<std::string> readable_paths_;
  std::vector<std::string> variables_;
};

inline constexpr Sandbox::Action Sandbox::Action::kill{Sandbox::Action::Kind::kill, 0};

}  // namespace procpool
