// SPDX-License-Identifier: MIT
#include <procpool/worker/spawn_start.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <procpool/common/errno_text.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/common/unique_fd.hpp>
#include <procpool/worker/launch.hpp>
#include <procpool/worker/worker_process.hpp>

extern char** environ;

namespace procpool::detail {
namespace {

// The bootstrap socket's number in the spawned process.
constexpr int kBootstrapFd = 3;

struct SpawnAttributes {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;
  SpawnAttributes() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attributes);
  }
  ~SpawnAttributes() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
  }
};

[[noreturn]] void fail(const char* step, int err) {
  throw Error(std::string("cannot start a worker by spawn: ") + step + ": " + detail::errno_text(err));
}

}  // namespace

pid_t exec_worker(const WorkerConfig& config, const WorkerSegment& segment, const std::string& program,
                  const std::string& argv0) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) fail("socketpair", errno);
  UniqueFd host_end(sv[0]), worker_end(sv[1]);
  if (worker_end.get() == kBootstrapFd) {
    // dup2 onto itself would leave FD_CLOEXEC set: move it out of the way.
    worker_end.reset(::fcntl(worker_end.release(), F_DUPFD_CLOEXEC, kBootstrapFd + 1));
    if (!worker_end) fail("fcntl(F_DUPFD_CLOEXEC)", errno);
  }
  SpawnAttributes spawn;
  int err = posix_spawn_file_actions_adddup2(&spawn.actions, worker_end.get(), kBootstrapFd);
  if (err != 0) fail("posix_spawn_file_actions_adddup2", err);
  // Blocked until the worker has installed its own dispositions (as a
  // forked worker is), at their defaults whatever the host ignores, and a
  // process group of its own, which the pool kills with it.
  sigset_t all, defaults;
  sigfillset(&all);
  sigfillset(&defaults);
  sigdelset(&defaults, SIGKILL);
  sigdelset(&defaults, SIGSTOP);
  posix_spawnattr_setsigmask(&spawn.attributes, &all);
  posix_spawnattr_setsigdefault(&spawn.attributes, &defaults);
  posix_spawnattr_setpgroup(&spawn.attributes, 0);
  posix_spawnattr_setflags(&spawn.attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

  // The host's environment, and the bootstrap socket's number.
  std::string channel = std::string(kSpawnChannelVariable) + "=" + std::to_string(kBootstrapFd);
  std::vector<char*> env;
  for (char** e = environ; e && *e; ++e)
    if (std::string_view(*e).substr(0, sizeof kSpawnChannelVariable) != channel.substr(0, sizeof kSpawnChannelVariable))
      env.push_back(*e);
  env.push_back(channel.data());
  env.push_back(nullptr);
  std::string name = argv0.empty() ? program : argv0;
  char* argv[] = {name.data(), nullptr};

  pid_t pid = -1;
  err = posix_spawn(&pid, program.c_str(), &spawn.actions, &spawn.attributes, argv, env.data());
  if (err != 0) fail(("posix_spawn(" + program + ")").c_str(), err);
  worker_end.reset();
  try {
    send_launch(host_end.get(), config, segment);
  } catch (...) {
    // It exited before reading (not a program that calls procpool::init,
    // say): it goes, now.
    ::kill(pid, SIGKILL);
    int status;
    ::waitpid(pid, &status, 0);
    throw;
  }
  return pid;
}

void become_spawned_worker(const char* channel) noexcept {
  int fd = std::atoi(channel);
  // Not for what the worker's tasks start. Called from init, first in main,
  // before the worker has a second thread.
  ::unsetenv(kSpawnChannelVariable);  // NOLINT(concurrency-mt-unsafe)
  LaunchMessage message;
  int err = read_launch(fd, message);
  ::close(fd);
  if (err != 0 || message.header.magic == 0) _exit(kExitSetupFailed);
  become_launched_worker(message);
}

}  // namespace procpool::detail
