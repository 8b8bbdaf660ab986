// SPDX-License-Identifier: MIT
#include <procpool/sandbox/seccomp_filter.hpp>

#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include <procpool/common/errno_text.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/sandbox/landlock.hpp>
#include <procpool/sandbox/path_queries.hpp>

namespace procpool::detail {
namespace {

// compute_only, allowed with any arguments. What procpool's own worker
// path needs (DESIGN.md, "Sandbox", has the audit), and what a computing
// task and its threads need from the C and C++ runtimes.
constexpr const char* kComputeSyscalls[] = {
    // descriptors the worker holds: its rings' doorbell, SharedBytes
    // channel, stdout/stderr, memfds received
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "pwrite64",
    "lseek",
    "close",
    "fstat",
    "fcntl",
    // memory (mmap, mprotect and pkey_mprotect are conditional, below)
    "brk",
    "munmap",
    "mremap",
    "madvise",
    // futexes and threads (clone itself is conditional, below)
    "futex",
    "set_robust_list",
    "rseq",
    "sched_yield",
    "sched_getaffinity",
    "getcpu",  // sched_getcpu (the worker's spin) where glibc has no rseq area to read it from
    // signals to itself (kill and tgkill are conditional, below); the
    // crash handler's alternate stack
    "rt_sigprocmask",
    "rt_sigreturn",
    "sigaltstack",
    "restart_syscall",
    "getpid",
    "gettid",
    // time and sleeping
    "clock_gettime",
    "clock_getres",
    "gettimeofday",
    "time",
    "clock_nanosleep",
    "nanosleep",
    "getrusage",
    "getrandom",
    // SharedBytes: made (memfd, sized, sealed with fcntl), checked, passed
    "memfd_create",
    "ftruncate",
    "fstatfs",
    "sendmsg",
    "recvmsg",
    "exit",
    "exit_group",
};

// A sanitized build of procpool (-DPROCPOOL_SANITIZE) runs under the
// sanitizers' runtimes, which make syscalls of their own in a task's
// process: UBSan's vptr check probes memory by writing it into a pipe
// (sanitizer_common's IsAccessibleMemoryRange). Never in a release build.
#ifdef PROCPOOL_SANITIZED
constexpr std::array<const char*, 2> kSanitizerSyscalls{"pipe2", "pipe"};
#else
constexpr std::array<const char*, 0> kSanitizerSyscalls{};
#endif

// read_only_files adds what reading files needs beyond open itself:
// listing a directory it opened (Landlock checked the open).
constexpr const char* kReadFileSyscalls[] = {"getdents64"};

// x86_64's x32 ABI marks its syscall numbers with this bit.
constexpr int kX32SyscallBit = 0x40000000;

// The flag bits that make an open anything but read-only (O_TMPFILE's own
// bit: O_DIRECTORY alone, for listing, is fine).
constexpr uint64_t kWritingOpenFlags = O_ACCMODE | O_CREAT | O_TRUNC | (O_TMPFILE & ~O_DIRECTORY);

uint32_t seccomp_action(Sandbox::Action action) {
  return action.kind == Sandbox::Action::Kind::kill ? SCMP_ACT_TRAP : SCMP_ACT_ERRNO(action.error_number);
}

struct FilterDeleter {
  void operator()(void* ctx) const noexcept { seccomp_release(ctx); }
};
using Filter = std::unique_ptr<void, FilterDeleter>;

// A rule for syscall `name`: `action` when all `conditions` hold.
struct Rule {
  const char* name;
  uint32_t action;
  std::vector<scmp_arg_cmp> conditions;
};

// Adds the filter's rules; returns the negative errno of the first
// failure, naming the syscall in `failed`.
int add_rules(void* ctx, const Sandbox& sandbox, pid_t self, const char*& failed) {
  uint32_t otherwise = seccomp_action(sandbox.otherwise());
  auto add = [&](const char* name, uint32_t action, const std::vector<scmp_arg_cmp>& conditions) {
    int number = seccomp_syscall_resolve_name(name);
    if (number < 0) return 0;  // none on this architecture (open, on arm64)
    // What the default does anyway (and libseccomp refuses a rule with the
    // default's action).
    if (action == otherwise) return 0;
    int rc = seccomp_rule_add_array(ctx, action, number, static_cast<unsigned>(conditions.size()),
                                    conditions.empty() ? nullptr : conditions.data());
    if (rc != 0) failed = name;
    return rc;
  };
  // What the user said of a syscall wins over the profile.
  auto user_decides = [&](const char* name) {
    return sandbox.allowed().count(name) != 0 || sandbox.denied().count(name) != 0;
  };
  bool reads_files = !sandbox.readable_paths().empty();
  std::vector<Rule> rules;
  for (const char* name : kComputeSyscalls) rules.push_back({name, SCMP_ACT_ALLOW, {}});
  for (const char* name : kSanitizerSyscalls) rules.push_back({name, SCMP_ACT_ALLOW, {}});
  if (reads_files)
    for (const char* name : kReadFileSyscalls) rules.push_back({name, SCMP_ACT_ALLOW, {}});
  // Threads, not processes: a clone without CLONE_THREAD is a fork.
  // clone3 passes its flags in memory the filter cannot read: it fails
  // with ENOSYS, and glibc's pthread_create falls back to clone.
  rules.push_back({"clone", SCMP_ACT_ALLOW, {SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)}});
  rules.push_back({"clone3", SCMP_ACT_ERRNO(ENOSYS), {}});
  // Any handler but SIGSYS's: the worker's own records which syscall
  // killed it. (Ignoring or blocking SIGSYS does not save a task: the
  // kernel forces it; the host then reports the syscall as unknown.)
  // Asking what SIGSYS's handler is (no new action) changes nothing.
  rules.push_back({"rt_sigaction", SCMP_ACT_ALLOW, {SCMP_A0(SCMP_CMP_NE, SIGSYS)}});
  rules.push_back({"rt_sigaction", SCMP_ACT_ALLOW, {SCMP_A1(SCMP_CMP_EQ, 0)}});
  // Signals to itself only (raise, abort; the crash handler's re-raise).
  rules.push_back({"kill", SCMP_ACT_ALLOW, {SCMP_A0(SCMP_CMP_EQ, static_cast<uint64_t>(self))}});
  rules.push_back({"tgkill", SCMP_ACT_ALLOW, {SCMP_A0(SCMP_CMP_EQ, static_cast<uint64_t>(self))}});
  // Its own limits (RLIMIT_CPU per call, limits.cpu); unprivileged, it
  // can only lower a hard limit.
  rules.push_back({"prlimit64", SCMP_ACT_ALLOW, {SCMP_A0(SCMP_CMP_EQ, 0)}});
  // Its own CPUs: a worker on the host's CPU moves off it (step_aside.hpp).
  rules.push_back({"sched_setaffinity", SCMP_ACT_ALLOW, {SCMP_A0(SCMP_CMP_EQ, 0)}});
  // isatty(), which stdio asks of a stream before its first write.
  rules.push_back({"ioctl", SCMP_ACT_ALLOW, {SCMP_A1(SCMP_CMP_EQ, TCGETS)}});
  // No memory made executable (shellcode written, then run). Every mapping,
  // not only anonymous ones: a memfd the task wrote is a file too, and
  // mprotect cannot tell one kind from the other. allow_executable_memory()
  // allows the three with any arguments (the user decides, below).
  for (const char* name : {"mmap", "mprotect", "pkey_mprotect"})
    rules.push_back({name, SCMP_ACT_ALLOW, {SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)}});
  // Calls that name a path are answered by the SIGSYS handler (path_queries),
  // which reads the path the filter cannot: glibc's fstat is
  // newfstatat(fd, "", AT_EMPTY_PATH), and no argument check can tell it
  // from newfstatat(AT_FDCWD, "/etc/shadow", AT_EMPTY_PATH). A trap in
  // every mode, so that fstat works under errno_ too.
  for (const char* name : trapped_path_queries(reads_files)) rules.push_back({name, SCMP_ACT_TRAP, {}});
  // statx names a path too, and glibc's statx() falls back to fstatat on
  // ENOSYS (as do Rust's std and coreutils).
  rules.push_back({"statx", SCMP_ACT_ERRNO(ENOSYS), {}});
  if (reads_files) {
    rules.push_back({"openat", SCMP_ACT_ALLOW, {SCMP_A2(SCMP_CMP_MASKED_EQ, kWritingOpenFlags | O_PATH, 0)}});
    rules.push_back({"open", SCMP_ACT_ALLOW, {SCMP_A1(SCMP_CMP_MASKED_EQ, kWritingOpenFlags | O_PATH, 0)}});
    // Landlock does not check an O_PATH open (no file is opened): it
    // would reach any path, and fstat on its fd show the metadata.
    rules.push_back({"openat", SCMP_ACT_ERRNO(EACCES), {SCMP_A2(SCMP_CMP_MASKED_EQ, O_PATH, O_PATH)}});
    rules.push_back({"open", SCMP_ACT_ERRNO(EACCES), {SCMP_A1(SCMP_CMP_MASKED_EQ, O_PATH, O_PATH)}});
    // A link's target is not checked by Landlock either (/proc/<pid>/fd/*
    // of the host, of the same uid, would name its open files), and no
    // open can vouch for a link itself: refused, as Landlock refuses an open.
    rules.push_back({"readlink", SCMP_ACT_ERRNO(EACCES), {}});
    rules.push_back({"readlinkat", SCMP_ACT_ERRNO(EACCES), {}});
  }
  for (const Rule& rule : rules)
    if (!user_decides(rule.name))
      if (int rc = add(rule.name, rule.action, rule.conditions)) return rc;
  for (const std::string& name : sandbox.allowed())
    if (int rc = add(name.c_str(), SCMP_ACT_ALLOW, {})) return rc;
  for (const auto& [name, action] : sandbox.denied())
    if (int rc = add(name.c_str(), seccomp_action(action), {})) return rc;
  return 0;
}

// A filter with its attributes set, or null with errno set.
Filter make_filter(const Sandbox& sandbox) {
  uint32_t otherwise = seccomp_action(sandbox.otherwise());
  Filter ctx(seccomp_init(otherwise));
  if (!ctx) {
    errno = ENOMEM;
    return nullptr;
  }
  // A syscall of another ABI is outside the profile too: libseccomp's
  // first instructions send any arch but the native one (int 0x80's i386
  // on x86_64) and, on x86_64, any number with the x32 bit (0x40000000)
  // to this action. TSYNC: threads the initializer started are confined
  // as well.
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, otherwise); rc != 0) return errno = -rc, nullptr;
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_TSYNC, 1); rc != 0) return errno = -rc, nullptr;
  // A binary tree of syscall numbers instead of a list: every syscall the
  // worker makes pays a few comparisons, not one per rule before its own
  // (the doorbell's write is on the call path).
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2); rc != 0) return errno = -rc, nullptr;
  return ctx;
}

void check_name(const std::string& name, const char* how) {
  int number = seccomp_syscall_resolve_name(name.c_str());
  if (number == __NR_SCMP_ERROR)
    throw Error("sandbox: '" + name + "' in " + how + " is not a system call libseccomp knows");
  if (number < 0) throw Error("sandbox: '" + name + "' in " + how + " is not a system call of this architecture");
}

}  // namespace

void check_sandbox(const Sandbox& sandbox) {
  if (!sandbox.enabled()) return;
  for (const std::string& name : sandbox.allowed()) check_name(name, "Sandbox::allow");
  for (const auto& [name, action] : sandbox.denied()) {
    check_name(name, "Sandbox::deny");
    if (action.kind == Sandbox::Action::Kind::error && (action.error_number <= 0 || action.error_number > 4095))
      throw Error("sandbox: Sandbox::deny(\"" + name + "\") with errno " + std::to_string(action.error_number) +
                  ", which is not an errno value (1 to 4095)");
  }
  Sandbox::Action otherwise = sandbox.otherwise();
  if (otherwise.kind == Sandbox::Action::Kind::error && (otherwise.error_number <= 0 || otherwise.error_number > 4095))
    throw Error("sandbox: the profile's errno " + std::to_string(otherwise.error_number) +
                " is not an errno value (1 to 4095)");
  check_readable_paths(sandbox.readable_paths());
  Filter ctx = make_filter(sandbox);
  const char* failed = "";
  int rc = ctx ? add_rules(ctx.get(), sandbox, getpid(), failed) : -errno;
  if (rc != 0)
    throw Error(std::string("sandbox: libseccomp refused the rule for '") + failed + "': " + detail::errno_text(-rc));
}

const char* load_seccomp_filter(const Sandbox& sandbox, pid_t self) noexcept {
  try {
    Filter ctx = make_filter(sandbox);
    if (!ctx) return "seccomp_init";
    const char* failed = "";
    if (int rc = add_rules(ctx.get(), sandbox, self, failed); rc != 0) return errno = -rc, "seccomp_rule_add";
    if (int rc = seccomp_load(ctx.get()); rc != 0) return errno = -rc, "seccomp_load";
    return nullptr;
  } catch (...) {
    errno = ENOMEM;
    return "building the seccomp filter";
  }
}

std::vector<sock_filter> export_seccomp_filter(const Sandbox& sandbox, pid_t self) {
  Filter ctx = make_filter(sandbox);
  const char* failed = "";
  int rc = ctx ? add_rules(ctx.get(), sandbox, self, failed) : -errno;
  int fd = rc == 0 ? ::memfd_create("procpool-filter", MFD_CLOEXEC) : -1;
  if (fd < 0 && rc == 0) rc = -errno;
  if (rc == 0) rc = seccomp_export_bpf(ctx.get(), fd);
  std::vector<sock_filter> program;
  off_t size = rc == 0 ? ::lseek(fd, 0, SEEK_END) : 0;
  if (size > 0) {
    program.resize(static_cast<size_t>(size) / sizeof(sock_filter));
    if (::pread(fd, program.data(), program.size() * sizeof(sock_filter), 0) != size) rc = -EIO;
  }
  if (fd >= 0) ::close(fd);
  if (rc != 0) throw Error(std::string("sandbox: exporting the filter: ") + detail::errno_text(-rc));
  return program;
}

std::string syscall_name(uint32_t arch, int number) {
  // Another ABI's number means another call ("exit" for i386's 1, where
  // x86_64's 1 is write): named with its ABI, so that no one reads it as
  // the native call the profile may well allow.
  const char* abi = "";
  if (arch == SCMP_ARCH_X86_64 && (number & kX32SyscallBit) != 0) {
    arch = SCMP_ARCH_X32;
    abi = " (x32 ABI)";
  } else if (arch != seccomp_arch_native()) {
    abi = arch == SCMP_ARCH_X86 ? " (i386 ABI)" : " (a foreign ABI)";
  }
  if (char* name = seccomp_syscall_resolve_num_arch(arch, number)) {
    std::string result = std::string(name) + abi;
    std::free(name);
    return result;
  }
  char hex[16];
  std::snprintf(hex, sizeof hex, "%x", arch);
  return "syscall " + std::to_string(number) + " of architecture 0x" + hex;
}

}  // namespace procpool::detail
