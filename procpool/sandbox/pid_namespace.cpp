// SPDX-License-Identifier: MIT
#include <procpool/sandbox/pid_namespace.hpp>

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <procpool/common/sender_pid.hpp>
#include <procpool/sandbox/namespaces.hpp>

// Everything here runs in a child forked from a multi-threaded host, before
// the worker's first allocation: system calls only, no lock, no malloc.
// _Fork, not fork: no fork handler runs (procpool's own would find the
// parent outside the namespace, as pid 0, and kill the child).

namespace procpool::detail {
namespace {

// The messages on the keeper's socket (SOCK_SEQPACKET: one per read). The
// worker says it is born, and the kernel adds its credentials, with its pid
// translated to the keeper's namespace; the init says how the worker ended.
constexpr char kBorn = 'B';
struct Ended {
  char tag = 'E';
  int status = 0;  // waitpid's
};

void close_all_but(int keep) noexcept {
  if (keep > 3) ::syscall(SYS_close_range, 3u, static_cast<unsigned>(keep - 1), 0u);
  ::syscall(SYS_close_range, static_cast<unsigned>(keep + 1), ~0u, 0u);
  if (keep < 3) ::syscall(SYS_close_range, 3u, ~0u, 0u);
}

// Ends this process as `status` says the worker ended. A core file is the
// worker's to write (if any), not this copy's.
[[noreturn]] void end_as(int status) noexcept {
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    ::signal(sig, SIG_DFL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    ::raise(sig);  // pending while blocked; delivered as it is unblocked
    ::pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
  }
  _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0));
}

// The init (pid 1): reaps every process of the namespace (orphans come to
// it) until the worker is gone, tells the keeper how, and exits, which ends
// what is left in the namespace. Signals without a handler do not reach an
// init from inside the namespace, so the worker cannot end it early.
[[noreturn]] void serve_as_init(pid_t worker, int socket) noexcept {
  close_all_but(socket);
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, 0);
    if (pid == worker) {
      Ended ended;
      ended.status = status;
      (void)!::send(socket, &ended, sizeof ended, MSG_NOSIGNAL);
      _exit(0);
    }
    if (pid < 0 && errno == ECHILD) _exit(0);  // cannot happen while the worker lives
  }
}

// The keeper: the host's child. Forwards what it is sent to the worker,
// then ends as the worker did.
[[noreturn]] void keep(pid_t init, int socket, std::atomic<int32_t>* serving_pid) noexcept {
  close_all_but(socket);
  // Every signal is taken from a signalfd, so that none ends the keeper
  // but SIGKILL (which ends the init through its PR_SET_PDEATHSIG, and the
  // namespace with it). Those the host ignores (SIGINT) stay ignored.
  sigset_t all;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, nullptr);
  int signals = ::signalfd(-1, &all, SFD_CLOEXEC);
  pid_t worker = 0;
  sigset_t early;  // sent before the worker's pid was known
  sigemptyset(&early);
  int status = -1;
  bool reported = false;
  for (;;) {
    pollfd fds[2] = {{socket, POLLIN, 0}, {signals, POLLIN, 0}};
    if (::poll(fds, signals >= 0 ? 2 : 1, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo info{};
      if (::read(signals, &info, sizeof info) == sizeof info && info.ssi_signo != SIGCHLD) {
        int sig = static_cast<int>(info.ssi_signo);
        if (worker > 0) ::kill(worker, sig);
        else sigaddset(&early, sig);
      }
    }
    if (fds[0].revents & (POLLIN | POLLHUP)) {
      char data[sizeof(Ended)] = {};
      Received message = receive_with_sender(socket, data, sizeof data, MSG_CMSG_CLOEXEC);
      ssize_t got = message.bytes;
      if (got <= 0) break;  // the init is gone
      if (got == 1 && data[0] == kBorn) {
        if (message.sender > 0) worker = message.sender;
        if (worker > 0) {
          if (serving_pid) serving_pid->store(worker, std::memory_order_relaxed);
          for (int sig = 1; sig < NSIG; ++sig)
            if (sigismember(&early, sig) == 1) ::kill(worker, sig);
        }
      } else if (got == static_cast<ssize_t>(sizeof(Ended)) && data[0] == 'E') {
        Ended ended;
        std::memcpy(&ended, data, sizeof ended);
        status = ended.status;
        reported = true;
      }
    }
  }
  int init_status = 0;
  while (::waitpid(init, &init_status, 0) < 0 && errno == EINTR) {
  }
  // The init ends by exit(0) once it reported; without a report it was
  // killed (or failed to start the worker), and that is the status.
  end_as(reported ? status : init_status);
}

}  // namespace

const char* enter_pid_namespace(std::atomic<int32_t>* serving_pid) noexcept {
  bool own_user = needs_user_namespace();
  IdMaps maps = id_maps();
  if (::unshare(CLONE_NEWPID | CLONE_NEWNS | (own_user ? CLONE_NEWUSER : 0)) != 0) return "unshare";
  if (own_user)
    if (const char* step = write_id_maps(maps)) return step;
  // Mounts made here must not propagate back to the host's mount namespace
  // (a shared "/" would carry the new /proc there).
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return "making mounts private";
  int sockets[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sockets) != 0) return "socketpair";
  int on = 1;
  if (::setsockopt(sockets[0], SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0) return "setsockopt(SO_PASSCRED)";
  pid_t init = _Fork();
  if (init < 0) return "fork (the namespace's init)";
  if (init > 0) {
    ::close(sockets[1]);
    keep(init, sockets[0], serving_pid);
  }
  // The init, pid 1. It dies with the keeper; a keeper already gone has
  // closed its end of the socket.
  ::close(sockets[0]);
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return "prctl(PR_SET_PDEATHSIG)";
  pollfd hup{sockets[1], 0, 0};
  if (::poll(&hup, 1, 0) == 1 && (hup.revents & POLLHUP)) _exit(0);
  if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) return "mounting /proc";
  pid_t worker = _Fork();
  if (worker < 0) return "fork (the worker)";
  if (worker > 0) serve_as_init(worker, sockets[1]);
  // The worker, pid 2. The kernel attaches its credentials (SO_PASSCRED).
  (void)!::send(sockets[1], &kBorn, 1, MSG_NOSIGNAL);
  ::close(sockets[1]);
  return nullptr;
}

}  // namespace procpool::detail
