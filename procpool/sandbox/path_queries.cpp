// SPDX-License-Identifier: MIT
// The SIGSYS handler that answers trapped path queries. It runs in the
// worker, in signal context, for any thread: async-signal-safe calls only,
// raw syscalls (no interceptor of a sanitizer in between), errno kept.
//
// What it answers (a stands for the syscall's arguments, in its registers):
// - a path query on a descriptor (newfstatat(fd, "", AT_EMPTY_PATH), as
//   glibc's fstat makes it; a NULL path with AT_EMPTY_PATH, as Linux 6.11
//   allows): fstat(fd). The descriptor is one the worker holds.
// - a path, under read_only_files: open it read-only (O_NONBLOCK, so a FIFO
//   cannot block it; O_NOCTTY; O_NOFOLLOW for lstat) and fstat that. The
//   open is Landlock's to refuse, so a path answers exactly where the task
//   could open it, EACCES elsewhere; access() with W_OK or X_OK is EACCES
//   (nothing is writable or executable to this worker).
// - a path, under compute_only: what a call outside the profile gets, the
//   profile's errno, or a violation for the crash handler to record.
// The handler reads the path only to see whether it is empty; it passes
// the task's pointer to the kernel, which checks it: a thread changing the
// string meanwhile gains nothing it could not open itself.
#include <procpool/sandbox/path_queries.hpp>

#include <fcntl.h>
#include <linux/audit.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <iterator>

namespace procpool::detail {
namespace {

#if defined(__x86_64__)
constexpr uint32_t kNativeArch = AUDIT_ARCH_X86_64;
long argument(void* context, int i) {
  constexpr int kRegs[] = {REG_RDI, REG_RSI, REG_RDX, REG_R10};
  return static_cast<long>(static_cast<ucontext_t*>(context)->uc_mcontext.gregs[kRegs[i]]);
}
void set_result(void* context, long result) { static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_RAX] = result; }
#elif defined(__aarch64__)
constexpr uint32_t kNativeArch = AUDIT_ARCH_AARCH64;
long argument(void* context, int i) {
  return static_cast<long>(static_cast<ucontext_t*>(context)->uc_mcontext.regs[i]);
}
void set_result(void* context, long result) {
  static_cast<ucontext_t*>(context)->uc_mcontext.regs[0] = static_cast<unsigned long>(result);
}
#else
#error "path_queries: the SIGSYS handler knows the syscall registers of x86_64 and aarch64 only"
#endif

// si_code of a seccomp trap (SYS_SECCOMP; see crash_handler.cpp).
constexpr int kSysSeccomp = 1;
// answer()'s "not mine to answer: a violation".
constexpr long kViolation = LONG_MIN;

constexpr const char* kStatCalls[] = {"newfstatat", "stat", "lstat"};
constexpr const char* kStatAndAccessCalls[] = {"newfstatat", "stat", "lstat", "access", "faccessat", "faccessat2"};

struct sigaction g_previous {};  // the crash handler
// The numbers this handler answers: the profile's trapped path queries but
// those the user allowed or denied (deny(name, kill) traps too, and means
// a violation).
int g_answered[std::size(kStatAndAccessCalls)];
size_t g_answered_count = 0;
bool g_reads_files = false;
int g_refusal = 0;            // compute_only's errno for a path; 0: a violation
std::atomic<int> g_dying{0};  // lock-free (static_assert below): safe in a handler
static_assert(std::atomic<int>::is_always_lock_free);

long kernel_style(long rc) noexcept { return rc < 0 ? -errno : rc; }

// 0 with *out filled, or -errno: what the open of `path` allows.
long stat_by_opening(int dirfd, long path, long out, bool follow) noexcept {
  long fd =
      ::syscall(SYS_openat, dirfd, path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
  if (fd < 0) return -errno;
  long rc = kernel_style(::syscall(SYS_fstat, fd, out));
  ::syscall(SYS_close, fd);
  return rc;
}

long answer(long number, void* context) noexcept {
  if (std::find(g_answered, g_answered + g_answered_count, number) == g_answered + g_answered_count) return kViolation;
  enum { kStat, kAccess } query = kStat;
  int dirfd = AT_FDCWD;
  long path = 0, out = 0, flags = 0, mode = 0;
  switch (number) {
    case SYS_newfstatat:
      dirfd = static_cast<int>(argument(context, 0)), path = argument(context, 1), out = argument(context, 2),
      flags = argument(context, 3);
      break;
#ifdef SYS_stat
    case SYS_stat:
      path = argument(context, 0), out = argument(context, 1);
      break;
    case SYS_lstat:
      path = argument(context, 0), out = argument(context, 1), flags = AT_SYMLINK_NOFOLLOW;
      break;
    case SYS_access:
      query = kAccess, path = argument(context, 0), mode = argument(context, 1);
      break;
#endif
    case SYS_faccessat:
      query = kAccess, dirfd = static_cast<int>(argument(context, 0)), path = argument(context, 1),
      mode = argument(context, 2);
      break;
#ifdef SYS_faccessat2
    case SYS_faccessat2:
      query = kAccess, dirfd = static_cast<int>(argument(context, 0)), path = argument(context, 1),
      mode = argument(context, 2), flags = argument(context, 3);
      break;
#endif
    default:
      return kViolation;
  }
  if (query == kAccess && !g_reads_files) return kViolation;
  struct stat scratch {};
  long target = query == kStat ? out : reinterpret_cast<long>(&scratch);
  // The trapped syscall's argument, a register's integer.
  const char* text = reinterpret_cast<const char*>(path);  // NOLINT(performance-no-int-to-ptr)
  bool empty = text == nullptr || text[0] == '\0';
  if (empty && (flags & AT_EMPTY_PATH) != 0) {
    long rc = kernel_style(::syscall(SYS_fstat, dirfd, target));
    return rc == 0 && query == kAccess && (mode & (W_OK | X_OK)) != 0 ? -EACCES : rc;
  }
  if (text == nullptr) return -EFAULT;
  if (empty) return -ENOENT;
  if (!g_reads_files) return g_refusal != 0 ? -g_refusal : kViolation;
  long rc = stat_by_opening(dirfd, path, target, (flags & AT_SYMLINK_NOFOLLOW) == 0);
  return rc == 0 && query == kAccess && (mode & (W_OK | X_OK)) != 0 ? -EACCES : rc;
}

// The crash handler re-raised SIGSYS (this handler is still installed), or
// it could not run: die by SIGSYS, as an unsandboxed crash would. Not
// [[noreturn]], and no noreturn call in it: AddressSanitizer precedes such
// a call with __asan_handle_no_return, which reads /proc/self/maps (an
// open the filter traps, back into this handler, which then deadlocks on
// the lock glibc's pthread_getattr_np already holds).
void die_by_sigsys() noexcept {
  if (g_dying.fetch_add(1) > 1) ::kill(::getpid(), SIGKILL);  // every way below was taken from us
  sigset_t sys;
  sigemptyset(&sys);
  sigaddset(&sys, SIGSYS);
  pthread_sigmask(SIG_BLOCK, &sys, nullptr);
  // A trap while SIGSYS is blocked: the kernel restores its default action
  // and kills with it. newfstatat traps in every mode (unless the user
  // allowed it); rt_sigaction(SIGSYS) does in kill mode.
  ::syscall(SYS_newfstatat, AT_FDCWD, "", nullptr, 0);
  struct sigaction fallback {};
  fallback.sa_handler = SIG_DFL;
  ::sigaction(SIGSYS, &fallback, nullptr);
  pthread_sigmask(SIG_UNBLOCK, &sys, nullptr);
  ::raise(SIGSYS);
  ::kill(::getpid(), SIGKILL);
  ::syscall(SYS_exit_group, 128 + SIGSYS);
}

void on_sigsys(int sig, siginfo_t* info, void* context) {
  if (g_dying == 0 && info != nullptr && info->si_code == kSysSeccomp && info->si_arch == kNativeArch) {
    int saved = errno;
    long result = answer(info->si_syscall, context);
    errno = saved;
    if (result != kViolation) return set_result(context, result);
  }
  if (g_dying == 0) {
    g_dying.store(1);
    if ((g_previous.sa_flags & SA_SIGINFO) != 0 && g_previous.sa_sigaction != nullptr)
      g_previous.sa_sigaction(sig, info, context);
    else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) g_previous.sa_handler(sig);
  }
  die_by_sigsys();
}

}  // namespace

std::span<const char* const> trapped_path_queries(bool reads_files) noexcept {
  if (reads_files) return kStatAndAccessCalls;
  return kStatCalls;
}

const char* install_path_query_handler(const Sandbox& sandbox) noexcept {
  g_reads_files = !sandbox.readable_paths().empty();
  g_answered_count = 0;
  for (const char* name : trapped_path_queries(g_reads_files)) {
    int number = seccomp_syscall_resolve_name(name);
    bool user_decides = sandbox.allowed().count(name) != 0 || sandbox.denied().count(name) != 0;
    if (number >= 0 && !user_decides) g_answered[g_answered_count++] = number;
  }
  g_refusal = sandbox.otherwise().kind == Sandbox::Action::Kind::error ? sandbox.otherwise().error_number : 0;
  struct sigaction sa {};
  sa.sa_sigaction = on_sigsys;
  // SA_NODEFER: a trap inside the handler (an open the user denied) comes
  // back here, and on to the crash handler, instead of killing unrecorded.
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  if (::sigaction(SIGSYS, &sa, &g_previous) != 0) return "sigaction(SIGSYS)";
  return nullptr;
}

}  // namespace procpool::detail
