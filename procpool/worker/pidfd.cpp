// SPDX-License-Identifier: MIT
#include <procpool/worker/pidfd.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace procpool::detail {

int send_signal(int pidfd, int sig) noexcept {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

bool has_exited(int pidfd) noexcept {
  pollfd p{pidfd, POLLIN, 0};
  int r;
  while ((r = ::poll(&p, 1, 0)) < 0 && errno == EINTR) {
  }
  // An error (a closed or invalid descriptor) is no proof of life: the
  // caller's reap then reports what it can.
  return r != 0;
}

void kill_process_group(pid_t pgid) noexcept {
  if (pgid > 0) (void)::kill(-pgid, SIGKILL);
}

void reap(int pidfd, int& signal, int& exit_code) noexcept {
  siginfo_t info{};
  int r;
  // A pidfd the reactor waited on is non-blocking, and waitid on it fails
  // with EAGAIN while the process lives: wait for it to exit (a process
  // killed with SIGKILL exits promptly), or it would be left a zombie.
  while ((r = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED)) != 0 &&
         (errno == EINTR || errno == EAGAIN)) {
    if (errno == EAGAIN) {
      pollfd p{pidfd, POLLIN, 0};
      (void)::poll(&p, 1, -1);
    }
  }
  signal = r == 0 && (info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED) ? info.si_status : 0;
  exit_code = r == 0 && info.si_code == CLD_EXITED ? info.si_status : -1;
}

}  // namespace procpool::detail
