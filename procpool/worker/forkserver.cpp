// SPDX-License-Identifier: MIT
// The zygote. init() forks it before main has started threads or read
// secrets, so it holds what the program held then; it keeps nothing but
// its end of a socket to the host, and forks a worker for each launch
// message it reads (launch.hpp).
//
// Workers are the host's children, not the zygote's. The zygote forks
// them with clone3(CLONE_PARENT): the new process's parent is the
// zygote's, the host. So the host reaps them, reads their exit status
// and their pidfds as it does for workers it forks itself, and a worker's
// PR_SET_PDEATHSIG fires with the thread that called init(); the zygote
// never reaps and never has to report a status.
//
// clone3 is a raw syscall, so glibc does in the child none of what fork()
// does. What the child relies on is made right by hand: glibc's cached
// thread id (raise, pthread_kill and mutex owners use it) is written by
// the kernel through CLONE_CHILD_SETTID at the address glibc registered
// with set_tid_address, which PR_GET_TID_ADDRESS gives back; the robust
// futex list, which the kernel does not copy, is registered again. The
// rest of fork()'s work (resetting locks other threads held, running
// atfork handlers) has nothing to do in a single-threaded process that
// holds no lock when it clones.
#include <procpool/worker/forkserver.hpp>

#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>

#include <procpool/common/errno_text.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/common/unique_fd.hpp>
#include <procpool/worker/group_sweeper.hpp>
#include <procpool/worker/launch.hpp>
#include <procpool/worker/worker_process.hpp>

namespace procpool::detail {
namespace {

// How long the host waits for the zygote's answer: a fork of a small
// process takes well under a millisecond; one that does not answer in
// this time (stopped, say) is given up, so that a pool's forker thread,
// and the shutdown that joins it, never wait for ever.
constexpr int kAnswerTimeoutMs = 10000;

struct Zygote {
  pid_t owner = 0;  // the process whose zygote it is
  pid_t pid = -1;
  UniqueFd pidfd;  // signals reach the zygote, never a process that reused its pid
  UniqueFd channel;
  std::string unavailable;  // set once the zygote cannot serve
  std::mutex mutex;         // one launch at a time on the channel
  // In a fork of a process that had a zygote: the parent's, kept reachable
  // (a leak checker would report it at exit), never used.
  Zygote* inherited = nullptr;
};
Zygote* g_zygote = nullptr;  // never freed: workers may be asked for until exit
std::mutex g_start_mutex;

bool answer(int channel, int64_t value) noexcept {
  for (;;) {
    if (::send(channel, &value, sizeof value, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof value)) return true;
    if (errno != EINTR) return false;
  }
}

[[noreturn]] void zygote_main(int channel, pid_t host) noexcept {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != host) _exit(0);
  char name[16] = {};
  prctl(PR_GET_NAME, name);
  prctl(PR_SET_NAME, "procpool-zygote");
  // Ctrl-C is the host's to handle, as it is in workers.
  for (int sig = 1; sig < NSIG; ++sig)
    if (sig != SIGKILL && sig != SIGSTOP) signal(sig, sig == SIGINT ? SIG_IGN : SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  pthread_sigmask(SIG_SETMASK, &none, nullptr);
  close_inherited_fds(channel, channel);

  int* tid_address = nullptr;
  int64_t unable = prctl(PR_GET_TID_ADDRESS, &tid_address) == 0 ? 0 : -errno;
  void* robust_head = nullptr;
  size_t robust_len = 0;
  ::syscall(SYS_get_robust_list, 0, &robust_head, &robust_len);

  for (;;) {
    LaunchMessage message;
    int err = read_launch(channel, message);
    if (err == 0 && message.header.magic == 0) _exit(0);  // the host is gone
    if (err != 0) {
      answer(channel, -err);
      _exit(0);  // out of step with the host: it gives up on this zygote
    }
    if (unable != 0) {
      if (!answer(channel, unable)) _exit(0);
      continue;
    }
    clone_args args{};
    args.flags = CLONE_PARENT | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID;
    args.child_tid = reinterpret_cast<uintptr_t>(tid_address);
    long pid = ::syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) {
      ::close(channel);  // neither may ask for processes of its own
      // A sweeper, the host's child too, costs the host no fork of its own
      // address space (group_sweeper.hpp); it makes system calls only.
      if (message.header.magic == kSweeperMagic) become_sweeper(message.fds[0].release(), host);
      if (robust_head) ::syscall(SYS_set_robust_list, robust_head, robust_len);
      prctl(PR_SET_NAME, name);
      become_launched_worker(message);
    }
    if (!answer(channel, pid > 0 ? pid : -errno)) _exit(0);
    // The message's descriptors close here: the worker has its own.
  }
}

}  // namespace

void start_zygote() {
  std::lock_guard start(g_start_mutex);
  pid_t self = ::getpid();
  if (g_zygote && g_zygote->owner == self) return;
  // A fork of a process that had a zygote: the parent's stays the
  // parent's (its channel and mutex here are copies; dropped, not used).
  auto* zygote = new Zygote();
  zygote->inherited = g_zygote;
  g_zygote = zygote;
  g_zygote->owner = self;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    throw Error(std::string("procpool::init: cannot start the forkserver: socketpair: ") + detail::errno_text(errno));
  UniqueFd host_end(sv[0]), zygote_end(sv[1]);
  flush_standard_streams();  // unflushed output would otherwise be written twice
  pid_t pid = ::fork();
  if (pid < 0)
    throw Error(std::string("procpool::init: cannot start the forkserver: fork: ") + detail::errno_text(errno));
  if (pid == 0) {
    host_end.release();  // closed by close_inherited_fds
    zygote_main(zygote_end.get(), self);
  }
  g_zygote->pid = pid;
  g_zygote->pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  g_zygote->channel = std::move(host_end);
}

const char* zygote_unavailable() noexcept {
  if (!g_zygote) return "procpool::init(argc, argv) was not called at the top of main";
  if (g_zygote->owner != ::getpid())
    return "this process is a fork of the one that called procpool::init(): call procpool::init() in it too";
  if (!g_zygote->unavailable.empty()) return g_zygote->unavailable.c_str();
  return nullptr;
}

pid_t zygote_pid() noexcept { return g_zygote && g_zygote->owner == ::getpid() ? g_zygote->pid : -1; }

namespace {

// Sends one message with `send` and returns the pid the zygote answers.
// `what` names the process asked for in the errors.
template <class Send>
pid_t ask_zygote(const char* what, Send send) {
  if (const char* why = zygote_unavailable())
    throw Error(std::string("cannot start a ") + what + " by forkserver: " + why);
  Zygote& z = *g_zygote;
  std::lock_guard lock(z.mutex);
  auto give_up = [&](const std::string& why) -> Error {
    // The channel is out of step or dead: no later launch may use it.
    z.unavailable = "the forkserver (pid " + std::to_string(z.pid) + ") " + why;
    int status = 0;
    if (z.pidfd) ::syscall(SYS_pidfd_send_signal, z.pidfd.get(), SIGKILL, nullptr, 0);
    else ::kill(z.pid, SIGKILL);   // no pidfd (an old kernel): unreaped, its pid is still its own
    ::waitpid(z.pid, &status, 0);  // ECHILD if the application reaps children itself
    z.channel.reset();
    return Error(std::string("cannot start a ") + what + ": " + z.unavailable);
  };
  if (!z.unavailable.empty()) throw Error(std::string("cannot start a ") + what + ": " + z.unavailable);
  try {
    send(z.channel.get());
  } catch (const Error& e) {
    throw give_up(std::string("could not be reached: ") + e.what());
  }
  int64_t reply = 0;
  size_t got = 0;
  while (got < sizeof reply) {
    pollfd p{z.channel.get(), POLLIN, 0};
    int ready = ::poll(&p, 1, kAnswerTimeoutMs);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) throw give_up("did not answer within " + std::to_string(kAnswerTimeoutMs / 1000) + " s");
    ssize_t n = ::recv(z.channel.get(), reinterpret_cast<char*>(&reply) + got, sizeof reply - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw give_up(n == 0 ? "is gone" : std::string("could not be read: ") + detail::errno_text(errno));
    got += static_cast<size_t>(n);
  }
  if (reply == -ENOSYS || reply == -EINVAL)
    throw give_up(std::string("cannot clone its workers as the host's children on this kernel: ") +
                  detail::errno_text(static_cast<int>(-reply)));
  if (reply < 0)
    throw Error(std::string("cannot start a ") + what +
                ": the forkserver's clone3: " + detail::errno_text(static_cast<int>(-reply)));
  return static_cast<pid_t>(reply);
}

}  // namespace

pid_t zygote_start_worker(const WorkerConfig& config, const WorkerSegment& segment) {
  return ask_zygote("worker", [&](int socket) { send_launch(socket, config, segment); });
}

pid_t zygote_start_sweeper(int channel) {
  return ask_zygote("sweeper", [&](int socket) { send_sweeper_launch(socket, channel); });
}

}  // namespace procpool::detail
