// SPDX-License-Identifier: MIT
#include <procpool/worker/crash_handler.hpp>

#include <execinfo.h>
#include <signal.h>
#include <sys/mman.h>

namespace procpool::detail {
namespace {

ControlBlock* g_control = nullptr;
constexpr int kFatalSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS};
constexpr size_t kAltStackBytes = size_t{256} * 1024;
// si_code of a seccomp trap (SYS_SECCOMP in <asm-generic/siginfo.h>, which
// glibc's <signal.h> does not export and cannot be included beside it).
constexpr int kSysSeccomp = 1;

void on_fatal_signal(int sig, siginfo_t* info, void*) {
  // A seccomp filter's trap (Sandbox::Action::kill): which syscall, for the
  // host's SandboxViolation. The syscall did not run.
  if (sig == SIGSYS && info && info->si_code == kSysSeccomp) {
    g_control->violation_syscall.store(info->si_syscall, std::memory_order_relaxed);
    g_control->violation_arch.store(info->si_arch, std::memory_order_relaxed);
  }
  // backtrace() is not formally async-signal-safe; the host called it once
  // before it forked (preload_unwinder) so that libgcc is loaded and it
  // allocates nothing here.
  // Frames 0 and 1 are this handler and the kernel's signal trampoline.
  constexpr int kSkip = 2;
  void* frames[kMaxCrashFrames + kSkip];
  int n = backtrace(frames, kMaxCrashFrames + kSkip);
  for (int i = kSkip; i < n; ++i) g_control->crash_frames[i - kSkip] = frames[i];
  g_control->crash_signal.store(sig, std::memory_order_relaxed);
  g_control->crash_frame_count.store(static_cast<uint32_t>(n > kSkip ? n - kSkip : 0), std::memory_order_release);
  // SA_RESETHAND restored the default action; SA_NODEFER lets it fire now.
  raise(sig);
}

}  // namespace

void preload_unwinder() noexcept {
  void* warm[2];
  backtrace(warm, 2);
}

bool install_crash_handlers(ControlBlock& control) noexcept {
  g_control = &control;

  void* stack = mmap(nullptr, kAltStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return false;
  stack_t ss{};
  ss.ss_sp = stack;
  ss.ss_size = kAltStackBytes;
  if (sigaltstack(&ss, nullptr) != 0) return false;

  struct sigaction sa {};
  sa.sa_sigaction = on_fatal_signal;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  for (int sig : kFatalSignals)
    if (sigaction(sig, &sa, nullptr) != 0) return false;
  return true;
}

}  // namespace procpool::detail
