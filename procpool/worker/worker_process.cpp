// SPDX-License-Identifier: MIT
#include <procpool/worker/worker_process.hpp>

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio_ext.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>

#include <procpool/common/errno_text.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/sandbox/enter_sandbox.hpp>
#include <procpool/sandbox/namespaces.hpp>
#include <procpool/sandbox/pid_namespace.hpp>
#include <procpool/worker/crash_handler.hpp>
#include <procpool/worker/forkserver.hpp>
#include <procpool/worker/launch.hpp>
#include <procpool/worker/spawn_start.hpp>
#include <procpool/worker/start_state.hpp>
#include <procpool/worker/worker_lives.hpp>
#include <procpool/worker/worker_loop.hpp>

namespace procpool::detail {
namespace {

// True in a worker and in every process a task forks from one; false in
// the host, where the fork handlers below do nothing.
bool g_in_worker = false;
pid_t g_forking_process = 0;

// pthread_atfork handlers (installed once, in the host, before the first
// worker): a process a task forks dies with the process that forked it, as
// a worker dies with the host, so that a SIGKILL of the host reaches the
// whole tree. (posix_spawn, system and popen run no fork handlers: their
// children die with the worker's process group, while the host lives.)
void note_forking_process() noexcept {
  if (g_in_worker) g_forking_process = getpid();
}
void die_with_forking_process() noexcept {
  if (!g_in_worker) return;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != g_forking_process) raise(SIGKILL);  // it died before we could watch it
}

// exit() called by a task ends the worker only: without this, the host's
// atexit handlers and static destructors (inherited with its memory) would
// run in the worker. Registered after them, so it runs first.
void end_worker_on_exit(int status, void*) noexcept {
  // What the task printed; not fflush(nullptr): a stream the host had not
  // flushed when it forked holds the host's bytes, not the task's.
  std::fflush(stdout);
  std::fflush(stderr);
  _exit(status);
}

[[noreturn]] void fail_setup(ControlBlock& control, const char* step) noexcept {
  const int err = errno;
  char reason[96];
  std::snprintf(control.setup_error, sizeof control.setup_error, "%s: %s", step,
                detail::errno_text(err, reason, sizeof reason));
  _exit(kExitSetupFailed);
}

// Points fds 1 and 2 at the host's pipes (capture) or /dev/null (discard).
// A captured stdout is line-buffered, so that a crash loses at most the
// line being written (a pipe would make it fully buffered).
bool redirect_output(const WorkerConfig& config) noexcept {
  int out = -1, err = -1;
  if (config.output == WorkerOutput::capture) {
    out = config.stdout_fd;
    err = config.stderr_fd;
  } else if (config.output == WorkerOutput::discard) {
    out = err = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  } else {
    return true;
  }
  if (out < 0 || err < 0) return false;
  if ((out != 1 && ::dup2(out, 1) < 0) || (err != 2 && ::dup2(err, 2) < 0)) return false;
  for (int fd : {out, err})
    if (fd > 2) ::close(fd);  // a second close of /dev/null's fd fails harmlessly
  if (config.output == WorkerOutput::capture) std::setvbuf(stdout, nullptr, _IOLBF, 0);
  return true;
}

[[noreturn]] void become_worker(WorkerSegment& segment, const WorkerConfig& config, pid_t parent) noexcept {
  ControlBlock& control = segment.control();
  // What the host had buffered and not flushed (its streams were locked
  // by another thread) is the host's to write, not this copy's.
  __fpurge(stdout);
  __fpurge(stderr);
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail_setup(control, "prctl(PR_SET_PDEATHSIG)");
  if (getppid() != parent) _exit(kExitSetupFailed);  // the host died before we could watch it
  // Its own process group, which the pool kills with it: whatever its tasks
  // start (that does not leave the group) dies with the worker.
  if (setpgid(0, 0) != 0) fail_setup(control, "setpgid");
  g_in_worker = true;

  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    signal(sig, sig == SIGINT ? SIG_IGN : SIG_DFL);
  }
  sigset_t none;
  sigemptyset(&none);
  if (const int rc = pthread_sigmask(SIG_SETMASK, &none, nullptr); rc != 0) {
    errno = rc;
    fail_setup(control, "pthread_sigmask");
  }

  if (!redirect_output(config)) fail_setup(control, "redirecting stdout and stderr");
  if (config.close_fds) close_inherited_fds(config.doorbell_fd, config.handle_socket);
  // Before anything else runs here, the initializer included: the worker
  // forked into the namespace carries everything that ran before this.
  if (config.namespace_flags & CLONE_NEWPID)
    if (const char* step = enter_pid_namespace(&control.serving_pid)) fail_setup(control, step);
  if (!install_crash_handlers(control)) fail_setup(control, "sigaltstack");
  // Up to here the child took no lock a host thread could have held at fork
  // time. The first allocation may block for ever on one (a sanitizer's
  // allocator has no fork handler); it is made before the worker says it is
  // ready, so that the host's start-up deadline replaces such a worker.
  void* volatile probe = std::malloc(64);
  std::free(probe);
#if defined(PROCPOOL_SANITIZED)
  // A sanitizer's allocator keeps large blocks under a lock of their own: a
  // worker that passed the small probe hung on its first 1 MiB exception
  // (Exceptions.LongMessage..., ASan, about 1 run in 10 with the CPUs busy).
  void* volatile large_probe = std::malloc(size_t{4} << 20);
  std::free(large_probe);
#endif
  if (on_exit(end_worker_on_exit, nullptr) != 0) fail_setup(control, "on_exit");
  // Its resource limits, then its initializer under them: both before it
  // says it is ready, so that start_timeout bounds the initializer too.
  if (const char* step = worker_lives().start(config, control)) fail_setup(control, step);
  worker_lives().run_initializer(config, control);
  // After the initializer (the user's trusted set-up may load files),
  // before the worker says it is ready: no call reaches it unconfined.
  if (const char* step = enter_namespaces(config.namespace_flags)) fail_setup(control, step);
  if (config.sandbox)
    if (const char* step = enter_sandbox(*config.sandbox)) fail_setup(control, step);
  control.ready.store(1, std::memory_order_release);
  try {
    run_worker(segment, config);
  } catch (...) {
    _exit(kExitSetupFailed);
  }
}

}  // namespace

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
  close_span(from, long{std::numeric_limits<unsigned int>::max()});
}

void flush_standard_streams() noexcept {
  // Not fflush(nullptr): it locks every stream, and a thread blocked in a
  // read of stdin, or in a write to a full stdout pipe, holds its lock for
  // as long as it likes. A stream held now is left as is, and its copy in
  // the child is purged (become_worker).
  for (FILE* f : {stdout, stderr})
    if (ftrylockfile(f) == 0) {
      fflush_unlocked(f);
      funlockfile(f);
    }
}

void prepare_host_for_workers() {
  static std::once_flag once;
  std::call_once(once, [] {
    preload_unwinder();
    if (int err = pthread_atfork(note_forking_process, nullptr, die_with_forking_process); err != 0)
      throw Error(std::string("cannot start workers: pthread_atfork: ") + detail::errno_text(err));
  });
}

namespace {

pid_t fork_worker_process(WorkerSegment& segment, const WorkerConfig& config) {
  pid_t parent = getpid();
  flush_standard_streams();
  // Fork with every signal blocked: a signal that reaches the child before
  // it has reset the host's handlers (a test framework's, an app's) would
  // run that handler in the child. It stays pending until the child has
  // installed its own dispositions and unblocks.
  sigset_t all, previous;
  sigfillset(&all);
  if (!segment.inherit_on_fork(true))
    throw Error(std::string("cannot start a worker: madvise(MADV_DOFORK): ") + detail::errno_text(errno));
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  pid_t pid = fork();
  if (pid == 0) become_worker(segment, config, parent);
  int fork_errno = errno;
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  segment.inherit_on_fork(false);
  if (pid < 0) throw Error(std::string("cannot start a worker: fork: ") + detail::errno_text(fork_errno));
  return pid;
}

}  // namespace

void become_launched_worker(LaunchMessage& message) noexcept {
  // Never destroyed: the worker ends in _exit, holding what it points to.
  static DecodedLaunch launch;
  const char* error = decode_launch(message, launch);
  if (!launch.segment) _exit(kExitSetupFailed);
  try {
    static WorkerSegment segment(WorkerSegment::Attach{}, launch.segment.release(), launch.ring_capacity);
    prepare_host_for_workers();  // what a forked worker inherits: its tasks' children die with it
    // Its layout may differ from the host's (spawn: its own; forkserver:
    // the program's at init()): where its modules are, for the host to
    // symbolize a crash's frames (symbolize_crash). A forked worker needs
    // none, and could block here on a loader lock held at fork.
    ControlBlock& control = segment.control();
    control.crash_module_count.store(static_cast<uint32_t>(loaded_modules(control.crash_modules, kMaxLoadedModules)),
                                     std::memory_order_relaxed);
    if (error) {
      std::snprintf(control.setup_error, sizeof control.setup_error, "%s", error);
      _exit(kExitSetupFailed);
    }
    become_worker(segment, launch.config, launch.host);
  } catch (...) {
    _exit(kExitSetupFailed);
  }
}

SpawnedWorker start_worker(StartMethod method, WorkerSegment& segment, const WorkerConfig& config,
                           const std::string& program) {
  prepare_host_for_workers();
  pid_t pid = -1;
  switch (method) {
    case StartMethod::fork:
      pid = fork_worker_process(segment, config);
      break;
    case StartMethod::forkserver:
      pid = zygote_start_worker(config, segment);
      break;
    case StartMethod::spawn:
      pid = exec_worker(config, segment, program.empty() ? "/proc/self/exe" : program, start_state().argv0);
      break;
  }
  segment.drop_memfd();  // the worker mapped its own
  // Its own process group: also set from this side, so that the group
  // exists before the pool may signal it (one of the two calls fails
  // harmlessly when the other came first, or after an exec).
  (void)setpgid(pid, pid);

  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    int err = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    throw Error(std::string("cannot watch a worker: pidfd_open: ") + detail::errno_text(err));
  }
  return {pid, pidfd};
}

}  // namespace procpool::detail
