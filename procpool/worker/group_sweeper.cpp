// SPDX-License-Identifier: MIT
#include <procpool/worker/group_sweeper.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

#include <procpool/common/errno_text.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/worker/forkserver.hpp>
#include <procpool/worker/pidfd.hpp>

namespace procpool::detail {
namespace {

// Far more groups than a pool has workers and spares at once; a record
// past it is dropped (the pool still kills that group itself).
constexpr size_t kMaxGroups = size_t{1} << 16;
// Without a pidfd for the host (a kernel before 5.3), how often the
// sweeper looks whether it was reparented.
constexpr int kParentCheckMs = 100;

// Everything from here to become_sweeper's end runs in the child of a host
// that may have threads: system calls only, no allocation, no lock.

// Whether `pid` is a child of `host`: what the sweeper is told comes
// through a pipe that a worker started with close_fds = false also holds,
// and such a worker's tasks must not make it kill the groups of processes
// the pool never started.
bool is_child_of(pid_t pid, pid_t host) noexcept {
  char path[32] = "/proc/";
  char digits[16];
  int count = 0;
  for (auto v = static_cast<unsigned>(pid); v != 0 || count == 0; v /= 10)
    digits[count++] = static_cast<char>('0' + v % 10);
  char* p = path + 6;
  while (count > 0) *p++ = digits[--count];
  for (const char* tail = "/stat"; *tail;) *p++ = *tail++;
  *p = '\0';
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char text[512];
  ssize_t n = ::read(fd, text, sizeof text - 1);
  ::close(fd);
  if (n <= 0) return false;
  text[n] = '\0';
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
  char* close = nullptr;
  for (char* p = text; *p; ++p)
    if (*p == ')') close = p;
  if (!close || close[1] != ' ' || close[2] == '\0' || close[3] != ' ') return false;
  long ppid = 0;
  for (char* p = close + 4; *p >= '0' && *p <= '9'; ++p) ppid = ppid * 10 + (*p - '0');
  return ppid == host;
}

struct Groups {
  pid_t* ids;
  size_t count = 0;

  void apply(int32_t record, pid_t host) noexcept {
    if (record > 0) {
      if (count < kMaxGroups && is_child_of(record, host)) ids[count++] = record;
      return;
    }
    for (size_t i = 0; i < count; ++i)
      if (ids[i] == -record) {
        ids[i] = ids[--count];
        return;
      }
  }
};

// Applies the records waiting in the pipe. False at end of stream or on
// an error; true once the pipe is empty.
bool read_records(int channel, Groups& groups, pid_t host) noexcept {
  // Each record was one write of 4 bytes, which a pipe never splits, so a
  // read into a buffer of whole records returns whole records.
  int32_t records[256];
  for (;;) {
    ssize_t n = ::read(channel, records, sizeof records);
    if (n > 0) {
      for (ssize_t i = 0; i < n / static_cast<ssize_t>(sizeof(int32_t)); ++i) groups.apply(records[i], host);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && errno == EAGAIN;
  }
}

}  // namespace

[[noreturn]] void become_sweeper(int channel, pid_t host) noexcept {
  prctl(PR_SET_NAME, "procpool-sweep");
  (void)::setpgid(0, 0);
  for (int sig = 1; sig < NSIG; ++sig)
    if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  if (channel > 0) ::syscall(SYS_close_range, 0u, static_cast<unsigned>(channel - 1), 0u);
  ::syscall(SYS_close_range, static_cast<unsigned>(channel + 1), ~0u, 0u);
  (void)::fcntl(channel, F_SETFL, O_NONBLOCK);

  void* memory =
      ::mmap(nullptr, kMaxGroups * sizeof(pid_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) _exit(1);
  Groups groups{static_cast<pid_t*>(memory)};

  // Opened before the parent check: a host that exits after the check
  // makes the pidfd readable, one that exited before fails the check.
  int host_fd = static_cast<int>(::syscall(SYS_pidfd_open, host, 0));
  bool reading = true;
  while (::getppid() == host) {
    pollfd waits[2] = {{host_fd, POLLIN, 0}, {reading ? channel : -1, POLLIN, 0}};
    int ready = ::poll(waits, 2, host_fd < 0 ? kParentCheckMs : -1);
    if (ready < 0 && errno != EINTR) break;
    if (waits[0].revents) break;  // the host exited
    // At end of stream the host is exiting (its descriptors close before
    // its pidfd turns readable): watch only the pidfd from now on.
    if (waits[1].revents) reading = read_records(channel, groups, host);
  }
  read_records(channel, groups, host);  // what the host wrote before it went
  for (size_t i = 0; i < groups.count; ++i) ::kill(-groups.ids[i], SIGKILL);
  _exit(0);
}

void GroupSweeper::start() {
  auto fail = [](const char* step) {
    return Error(std::string("cannot start the pool's process-group sweeper: ") + step + ": " + errno_text(errno));
  };
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) throw fail("pipe2");
  UniqueFd read_end(ends[0]), write_end(ends[1]);
  // A sweeper that stopped reading must not block a fork or a reap.
  if (::fcntl(write_end.get(), F_SETFL, O_NONBLOCK) != 0) throw fail("fcntl(O_NONBLOCK)");
  pid_t pid = -1;
  if (!zygote_unavailable()) try {
      pid = zygote_start_sweeper(read_end.get());
    } catch (const Error&) {
      // The zygote is gone or cannot clone: the host forks it after all.
    }
  if (pid < 0) {
    const pid_t host = ::getpid();
    pid = ::_Fork();
    if (pid < 0) throw fail("fork");
    if (pid == 0) become_sweeper(read_end.get(), host);
  }
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) {
    Error error = fail("pidfd_open");
    ::kill(pid, SIGKILL);  // unreaped, the pid is still its own
    int status;
    ::waitpid(pid, &status, 0);
    throw error;
  }
  pid_ = pid;
  pidfd_ = std::move(pidfd);
  channel_.store(write_end.release(), std::memory_order_release);
}

void GroupSweeper::send(pid_t record) noexcept {
  // Relaxed: the fd's number is all this thread reads, and a watch or
  // forget happens-before stop() by the pool's own ordering (stop's
  // contract), never concurrently with it.
  int fd = channel_.load(std::memory_order_relaxed);
  if (fd < 0) return;
  auto value = static_cast<int32_t>(record);
  ssize_t n;
  do n = ::write(fd, &value, sizeof value);
  while (n < 0 && errno == EINTR);
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
