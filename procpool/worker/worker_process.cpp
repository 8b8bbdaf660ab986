// SPDX-License-Identifier: MIT
#include <procpool/worker/worker_process.hpp>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <procpool/common/errors.hpp>
#include <procpool/worker/crash_handler.hpp>
#include <procpool/worker/worker_loop.hpp>

namespace procpool::detail {
namespace {

[[noreturn]] void fail_setup(ControlBlock& control, const char* step) noexcept {
  std::snprintf(control.setup_error, sizeof control.setup_error, "%s: %s", step, std::strerror(errno));
  _exit(kExitSetupFailed);
}

// Closes every descriptor from 3 up but the two kept (which may be below
// 3 in a process that started with 0-2 closed).
void close_inherited_fds(int keep_a, int keep_b) noexcept {
  // close_range(2) is one syscall; on an old kernel fall back to a loop.
  auto close_span = [](long lo, long hi) {
    if (lo > hi) return;
    if (::syscall(SYS_close_range, static_cast<unsigned>(lo), static_cast<unsigned>(hi), 0) == 0) return;
    long max = std::min(hi + 1, sysconf(_SC_OPEN_MAX));
    for (long fd = lo; fd < max; ++fd) ::close(static_cast<int>(fd));
  };
  long from = 3;
  for (long keep : {std::min<long>(keep_a, keep_b), std::max<long>(keep_a, keep_b)}) {
    if (keep < from) continue;
    close_span(from, keep - 1);
    from = keep + 1;
  }
  close_span(from, static_cast<long>(~0u));
}

[[noreturn]] void become_worker(WorkerSegment& segment, const WorkerConfig& config, pid_t parent) noexcept {
  ControlBlock& control = segment.control();
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail_setup(control, "prctl(PR_SET_PDEATHSIG)");
  if (getppid() != parent) _exit(kExitSetupFailed);  // the host died before we could watch it

  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    signal(sig, sig == SIGINT ? SIG_IGN : SIG_DFL);
  }
  sigset_t none;
  sigemptyset(&none);
  if (sigprocmask(SIG_SETMASK, &none, nullptr) != 0) fail_setup(control, "sigprocmask");

  if (config.close_fds) close_inherited_fds(config.doorbell_fd, config.handle_socket);
  if (!install_crash_handlers(control)) fail_setup(control, "sigaltstack");
  try {
    run_worker(segment, config);
  } catch (...) {
    _exit(kExitSetupFailed);
  }
}

}  // namespace

SpawnedWorker spawn_worker(WorkerSegment& segment, const WorkerConfig& config) {
  pid_t parent = getpid();
  std::fflush(nullptr);  // unflushed stdio would otherwise be written twice
  // Fork with every signal blocked: a signal that reaches the child before
  // it has reset the host's handlers (a test framework's, an app's) would
  // run that handler in the child. It stays pending until the child has
  // installed its own dispositions and unblocks.
  sigset_t all, previous;
  sigfillset(&all);
  if (!segment.inherit_on_fork(true))
    throw Error(std::string("cannot start a worker: madvise(MADV_DOFORK): ") + std::strerror(errno));
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  pid_t pid = fork();
  if (pid == 0) become_worker(segment, config, parent);
  int fork_errno = errno;
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  segment.inherit_on_fork(false);
  if (pid < 0) throw Error(std::string("cannot start a worker: fork: ") + std::strerror(fork_errno));

  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    int err = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    throw Error(std::string("cannot watch a worker: pidfd_open: ") + std::strerror(err));
  }
  return {pid, pidfd};
}

}  // namespace procpool::detail
