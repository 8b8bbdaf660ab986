// SPDX-License-Identifier: MIT
#include <procpool/worker/group_sweeper.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <string>

#include <procpool/common/errno_text.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/common/sender_pid.hpp>
#include <procpool/common/unique_fd.hpp>
#include <procpool/worker/forkserver.hpp>
#include <procpool/worker/pidfd.hpp>
#include <procpool/worker/worker_process.hpp>

namespace procpool::detail {
namespace {

// Far more groups than a pool has workers and spares at once; a record
// past it is dropped (the pool still kills that group itself).
constexpr size_t kMaxGroups = size_t{1} << 16;
// At end of stream with the host still there: how long the sweeper waits
// for the host's pidfd (an exiting host closes its descriptors first)
// before it concludes the host exec'd another program, and leaves.
constexpr int kExitGraceMs = 1000;

// Everything from here to become_sweeper's end runs in the child of a host
// that may have threads: system calls only, no allocation, no lock.

struct Groups {
  pid_t* ids;
  size_t count = 0;

  void apply(int32_t record) noexcept {
    if (record > 0) {
      if (count < kMaxGroups) ids[count++] = record;
      return;
    }
    if (record == INT32_MIN) return;
    for (size_t i = 0; i < count; ++i)
      if (ids[i] == -record) {
        ids[i] = ids[--count];
        return;
      }
  }
};

enum class Read : uint8_t { drained, end_of_stream };

// Applies the records waiting on the socket. Only the host's count: the
// kernel attaches each sender's pid (SO_PASSCRED), and a worker started
// with close_fds = false holds the host's end too; its tasks must not
// make the sweeper kill, or spare, anyone.
Read read_records(int channel, Groups& groups, pid_t host) noexcept {
  for (;;) {
    int32_t record = 0;
    Received message = receive_with_sender(channel, &record, sizeof record, MSG_DONTWAIT);
    if (message.bytes < 0 && errno == EINTR) continue;
    if (message.bytes < 0 && errno == EAGAIN) return Read::drained;
    if (message.bytes <= 0) return Read::end_of_stream;  // (the host sends no empty record)
    if (message.bytes == static_cast<ssize_t>(sizeof record) && !message.truncated && message.sender == host)
      groups.apply(record);
  }
}

bool readable(int fd, int timeout_ms) noexcept {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) > 0;
}

}  // namespace

[[noreturn]] void become_sweeper(int channel, pid_t host) noexcept {
  (void)::setpgid(0, 0);
  for (int sig = 1; sig < NSIG; ++sig)
    if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  pthread_sigmask(SIG_SETMASK, &none, nullptr);
  close_inherited_fds(channel, channel);
  for (int fd = 0; fd < 3; ++fd)
    if (fd != channel) ::close(fd);

  void* memory =
      ::mmap(nullptr, kMaxGroups * sizeof(pid_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) _exit(1);  // the pool's sends fail quietly; it sweeps nothing
  Groups groups{static_cast<pid_t*>(memory)};

  // Opened before the parent check: a host that exits after the check
  // makes the pidfd readable, one that exited before fails the check.
  // (The pool made sure pidfd_open works here before starting this.)
  const int host_fd = static_cast<int>(::syscall(SYS_pidfd_open, host, 0));
  bool host_gone = host_fd < 0 || ::getppid() != host;
  // Named last: a process named procpool-sweep holds only its socket and
  // the host's pidfd (what tests look for), and is watching.
  prctl(PR_SET_NAME, "procpool-sweep");
  while (!host_gone) {
    pollfd waits[2] = {{host_fd, POLLIN, 0}, {channel, POLLIN, 0}};
    if (::poll(waits, 2, -1) < 0) {
      // EINTR, or ENOMEM: never a reason to believe the host gone.
      const timespec pause{0, 10'000'000};
      if (errno != EINTR) ::nanosleep(&pause, nullptr);
      continue;
    }
    // Records first, even when the host's pidfd turned readable in the
    // same wake-up: what it said before it died counts.
    if (waits[1].revents && read_records(channel, groups, host) == Read::end_of_stream) {
      // Every copy of the host's end is closed: the host is exiting (its
      // descriptors close before its pidfd turns readable), or it exec'd
      // another program, which has none of the pool. Sweep in the first
      // case only.
      host_gone = readable(host_fd, kExitGraceMs) || ::getppid() != host;
      if (!host_gone) _exit(0);
      break;
    }
    host_gone = waits[0].revents != 0 || ::getppid() != host;
  }
  read_records(channel, groups, host);  // what the host wrote before it went
  for (size_t i = 0; i < groups.count; ++i) ::kill(-groups.ids[i], SIGKILL);
  _exit(0);
}

namespace {

struct StartedSweeper {
  pid_t pid = -1;
  UniqueFd pidfd;
  UniqueFd channel;  // the host's end
};

[[noreturn]] void fail(const char* step, int err) {
  throw Error(std::string("cannot start the pool's process-group sweeper: ") + step + ": " + errno_text(err));
}

// A fresh socket pair for each attempt: a sweeper the zygote may have made
// before its answer was lost reads a socket no one writes to, and leaves.
StartedSweeper start_one(bool by_zygote) {
  int ends[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ends) != 0) fail("socketpair", errno);
  StartedSweeper s;
  s.channel.reset(ends[0]);
  UniqueFd sweeper_end(ends[1]);
  // Set before the first record is sent: the kernel attaches a sender's
  // credentials to what it sends only while the receiver asks for them.
  int on = 1;
  if (::setsockopt(sweeper_end.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0)
    fail("setsockopt(SO_PASSCRED)", errno);
  if (by_zygote) {
    s.pid = zygote_start_sweeper(sweeper_end.get());
  } else {
    const pid_t host = ::getpid();
    // No handler of the host's may run in the child before it has set its
    // own dispositions (become_sweeper unblocks them).
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    s.pid = ::_Fork();
    if (s.pid == 0) become_sweeper(sweeper_end.get(), host);
    const int err = errno;
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    if (s.pid < 0) fail("fork", err);
  }
  s.pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, s.pid, 0)));
  if (!s.pidfd) {
    const int err = errno;
    ::kill(s.pid, SIGKILL);  // unreaped, the pid is still its own
    int status;
    ::waitpid(s.pid, &status, 0);
    fail("pidfd_open", err);
  }
  return s;
}

}  // namespace

void GroupSweeper::start() {
  StartedSweeper s;
  if (!zygote_unavailable()) try {
      s = start_one(true);
    } catch (const Error&) {
      // The zygote is gone or cannot clone: the host forks it after all.
    }
  if (s.pid < 0) s = start_one(false);
  pid_ = s.pid;
  pidfd_ = std::move(s.pidfd);
  channel_.store(s.channel.release(), std::memory_order_release);
}

void GroupSweeper::send(pid_t record) noexcept {
  // Relaxed: the fd's number is all this thread reads, and a watch or
  // forget happens-before stop() by the pool's own ordering (stop's
  // contract), never concurrently with it.
  int fd = channel_.load(std::memory_order_relaxed);
  if (fd < 0 || gone_.load(std::memory_order_relaxed)) return;
  auto value = static_cast<int32_t>(record);
  ssize_t n;
  // MSG_NOSIGNAL: a sweeper that died (killed from outside) must not take
  // the host with it by SIGPIPE.
  do n = ::send(fd, &value, sizeof value, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof value) || record > 0) return;  // a lost watch: the pool's own kill remains
  // A lost forget (the sweeper stopped or gone): it would hold an id that
  // may be reused once the pool reaps the worker. It goes now, before
  // that reap, and sweeps nothing; stop() reaps it.
  gone_.store(true, std::memory_order_relaxed);
  send_signal(pidfd_.get(), SIGKILL);
}

void GroupSweeper::stop() noexcept {
  int fd = channel_.exchange(-1, std::memory_order_acq_rel);
  if (fd >= 0) ::close(fd);
  if (pid_ <= 0) return;
  send_signal(pidfd_.get(), SIGKILL);
  int sig = 0, code = 0;
  reap(pidfd_.get(), sig, code);
  pidfd_.reset();
  pid_ = -1;
}

}  // namespace procpool::detail
