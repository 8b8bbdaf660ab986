// SPDX-License-Identifier: MIT
// What the profiles refuse beyond a syscall's name: memory made
// executable (mmap, mprotect, pkey_mprotect with PROT_EXEC, a memfd mapped
// to run), syscalls of another ABI (i386's int 0x80, x32's numbers), and
// path queries (stat, access, readlink, O_PATH) outside read_only_files'
// paths or under compute_only; and what still works: code made before the
// filter, memory without exec, fstat, stat of readable files.
#include <doctest/doctest.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <procpool/sandbox/seccomp_filter.hpp>

#include "support/census.hpp"
#include "support/task_functions.hpp"

namespace {
using procpool::Sandbox;

#if defined(__x86_64__)
// mov eax, 42; ret
constexpr unsigned char kReturn42[] = {0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3};

// Writes kReturn42 into memory made executable `how`, and runs it: 42, or
// -errno of the step that was refused.
int run_written_code(std::string how) {
  constexpr size_t kPage = 4096;
  void* code = MAP_FAILED;
  if (how == "mmap") {
    code = ::mmap(nullptr, kPage, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (code == MAP_FAILED) return -errno;
    std::memcpy(code, kReturn42, sizeof kReturn42);
  } else if (how == "mprotect" || how == "pkey_mprotect") {
    code = ::mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (code == MAP_FAILED) return -errno;
    std::memcpy(code, kReturn42, sizeof kReturn42);
    // glibc's pkey_mprotect(..., -1) is mprotect: the syscall itself here.
    int rc = how == "mprotect" ? ::mprotect(code, kPage, PROT_READ | PROT_EXEC)
                               : static_cast<int>(::syscall(SYS_pkey_mprotect, code, kPage, PROT_READ | PROT_EXEC, -1));
    if (rc != 0) return -errno;
  } else if (how == "memfd") {  // a file the task wrote, mapped to run
    int fd = ::memfd_create("code", MFD_CLOEXEC);
    if (fd < 0 || ::write(fd, kReturn42, sizeof kReturn42) != sizeof kReturn42) return -errno;
    code = ::mmap(nullptr, kPage, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
    int err = errno;
    ::close(fd);
    if (code == MAP_FAILED) return -err;
  } else {
    return -EINVAL;
  }
  int result = reinterpret_cast<int (*)()>(code)();
  ::munmap(code, kPage);
  return result;
}
PROCPOOL_REGISTER(run_written_code);

// Maps, writes and protects memory without ever asking for exec: 0, or -errno.
int map_without_exec() {
  constexpr size_t kPage = 4096;
  void* p = ::mmap(nullptr, 4 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return -errno;
  std::memset(p, 7, 4 * kPage);
  if (::mprotect(p, kPage, PROT_READ) != 0 ||
      ::syscall(SYS_pkey_mprotect, static_cast<char*>(p) + kPage, kPage, PROT_NONE, -1) != 0)
    return -errno;
  return ::munmap(p, 4 * kPage) == 0 ? 0 : -errno;
}
PROCPOOL_REGISTER(map_without_exec);

// exit_group(42) by another ABI than the native one: if it ever ran, the
// worker would exit with 42. Else what the kernel or filter returned.
long foreign_exit(std::string abi) {
  long ret = -EINVAL;
  if (abi == "i386")  // i386's exit_group is 252; int 0x80 enters the compat table
    asm volatile("int $0x80" : "=a"(ret) : "a"(252L), "b"(42L) : "memory", "r8", "r9", "r10", "r11");
  if (abi == "x32")  // x32's exit_group is 231 with the x32 bit
    asm volatile("syscall" : "=a"(ret) : "a"(0x40000000L | 231L), "D"(42L) : "memory", "rcx", "r11");
  return ret;
}
PROCPOOL_REGISTER(foreign_exit);
#endif

// 0, or the errno of asking `what` of `path`.
int probe(std::string what, std::string path) {
  struct stat st {};
  char buf[256];
  errno = 0;
  int rc = -1;
  if (what == "stat") rc = ::stat(path.c_str(), &st);
  if (what == "lstat") rc = ::lstat(path.c_str(), &st);
  if (what == "fstatat_empty_path")  // the flag glibc's fstat uses, with a path
    rc = static_cast<int>(::syscall(SYS_newfstatat, AT_FDCWD, path.c_str(), &st, AT_EMPTY_PATH));
  if (what == "access_read") rc = ::access(path.c_str(), R_OK);
  if (what == "access_write") rc = ::access(path.c_str(), W_OK);
  if (what == "faccessat2") rc = static_cast<int>(::syscall(SYS_faccessat2, AT_FDCWD, path.c_str(), R_OK, 0));
  if (what == "statx_syscall") {
    struct statx sx {};
    rc = static_cast<int>(::syscall(SYS_statx, AT_FDCWD, path.c_str(), 0, STATX_BASIC_STATS, &sx));
  }
  if (what == "statx") {  // glibc's, which falls back to fstatat on ENOSYS
    struct statx sx {};
    rc = ::statx(AT_FDCWD, path.c_str(), 0, STATX_BASIC_STATS, &sx);
  }
  if (what == "readlink") rc = ::readlink(path.c_str(), buf, sizeof buf) < 0 ? -1 : 0;
  if (what == "open_o_path") {
    rc = ::open(path.c_str(), O_PATH | O_CLOEXEC);
    if (rc >= 0) rc = ::close(rc);
  }
  if (what == "fstat_of_open") {  // open, then fstat (glibc: newfstatat(fd, "", AT_EMPTY_PATH))
    rc = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (rc >= 0) {
      int fd = rc;
      rc = ::fstat(fd, &st) == 0 && st.st_size > 0 ? 0 : -1;
      ::close(fd);
    }
  }
  if (what == "fstat_memfd") {
    int fd = ::memfd_create("probe", MFD_CLOEXEC);
    rc = fd < 0 ? -1 : ::fstat(fd, &st);
    if (fd >= 0) ::close(fd);
  }
  if (what == "fstat_memfd_as_glibc") {  // the syscall glibc's fstat makes; TSan's own fstat makes fstat(2)
    int fd = ::memfd_create("probe", MFD_CLOEXEC);
    rc = fd < 0 ? -1 : static_cast<int>(::syscall(SYS_newfstatat, fd, "", &st, AT_EMPTY_PATH));
    if (fd >= 0) ::close(fd);
  }
  if (what == "ifstream") {
    std::ifstream in(path);
    std::string text;
    rc = in && std::getline(in, text) && !text.empty() ? 0 : -1;
    if (rc != 0 && errno == 0) errno = EIO;
  }
  if (what == "list") {
    std::error_code ec;
    std::filesystem::directory_iterator it(path, ec);
    rc = ec ? -1 : 0;
    errno = ec.value();
  }
  if (what == "file_size") {
    std::error_code ec;
    rc = std::filesystem::file_size(path, ec) == 6 && !ec ? 0 : -1;
    errno = ec ? ec.value() : errno;
  }
  return rc == 0 ? 0 : errno;
}
PROCPOOL_REGISTER(probe);

void raise_sigsys() { ::raise(SIGSYS); }
PROCPOOL_REGISTER(raise_sigsys);

#if defined(__x86_64__)
constexpr int kX32Bit = 0x40000000;

// What the classic BPF program answers to a syscall, as the kernel would
// run it: the instructions libseccomp emits (loads of seccomp_data words,
// AND, conditional and plain jumps, return).
uint32_t run_filter(const std::vector<sock_filter>& program, uint32_t arch, int number, uint64_t a1 = 0,
                    uint64_t a2 = 0) {
  seccomp_data data{};
  data.nr = number;
  data.arch = arch;
  data.args[1] = a1;
  data.args[2] = a2;
  uint32_t acc = 0;
  for (size_t pc = 0; pc < program.size();) {
    const sock_filter& op = program[pc++];
    auto jump = [&](bool taken) { pc += taken ? op.jt : op.jf; };
    switch (op.code) {
      case BPF_LD | BPF_W | BPF_ABS:
        REQUIRE(op.k + 4 <= sizeof data);
        std::memcpy(&acc, reinterpret_cast<const char*>(&data) + op.k, 4);
        break;
      case BPF_ALU | BPF_AND | BPF_K:
        acc &= op.k;
        break;
      case BPF_JMP | BPF_JA:
        pc += op.k;
        break;
      case BPF_JMP | BPF_JEQ | BPF_K:
        jump(acc == op.k);
        break;
      case BPF_JMP | BPF_JGT | BPF_K:
        jump(acc > op.k);
        break;
      case BPF_JMP | BPF_JGE | BPF_K:
        jump(acc >= op.k);
        break;
      case BPF_JMP | BPF_JSET | BPF_K:
        jump((acc & op.k) != 0);
        break;
      case BPF_RET | BPF_K:
        return op.k;
      default:
        FAIL("an instruction this evaluator does not know: code ", op.code);
        return 0;
    }
  }
  FAIL("the program ran off its end");
  return 0;
}
#endif

// The syscall a call's SandboxViolation names, or what happened instead.
template <class Future>
std::string violation(Future&& f) {
  try {
    f.get();
    return "(returned)";
  } catch (const procpool::SandboxViolation& e) {
    return e.syscall();
  } catch (const procpool::WorkerCrashed& e) {
    return "(crashed, signal " + std::to_string(e.signal()) + ", exit " + std::to_string(e.exit_code()) + ")";
  }
}

// A directory holding data.txt ("inside"), removed at the end.
struct TempDir {
  std::string path;
  TempDir() {
    char name[] = "/tmp/procpool-profiles-XXXXXX";
    path = ::mkdtemp(name);
    std::ofstream(path + "/data.txt") << "inside";
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

}  // namespace

#if defined(__x86_64__)
TEST_CASE("Sandbox.MemoryMadeExecutableUnderEitherProfileFailsWithSandboxViolationAndNeverRuns" *
          doctest::timeout(90)) {
  TempDir dir;
  {  // the code does run where nothing refuses it
    procpool::ProcessPool plain({.workers = 1});
    for (const char* how : {"mmap", "mprotect", "pkey_mprotect", "memfd"})
      CHECK(plain.submit(run_written_code, std::string(how)).get() == 42);
  }
  census::Snapshot before;
  for (const Sandbox& profile : {Sandbox::compute_only(), Sandbox::read_only_files({dir.path})}) {
    procpool::ProcessPool pool({.workers = 1, .sandbox = profile});
    CHECK(violation(pool.submit(run_written_code, std::string("mmap"))) == "mmap");
    CHECK(violation(pool.submit(run_written_code, std::string("mprotect"))) == "mprotect");
    CHECK(violation(pool.submit(run_written_code, std::string("pkey_mprotect"))) == "pkey_mprotect");
    CHECK(violation(pool.submit(run_written_code, std::string("memfd"))) == "mmap");
    CHECK(pool.submit(map_without_exec).get() == 0);
    CHECK(pool.submit(tasks::add, 2, 3).get() == 5);
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("Sandbox.ErrnoModeRefusesExecutableMemoryWithTheErrnoAndTheTaskGoesOn" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1, .sandbox = Sandbox::compute_only(Sandbox::Action::errno_(EPERM))});
  pid_t worker = pool.worker_pids().at(0);
  for (const char* how : {"mmap", "mprotect", "pkey_mprotect", "memfd"}) {
    CAPTURE(how);
    CHECK(pool.submit(run_written_code, std::string(how)).get() == -EPERM);
  }
  CHECK(pool.worker_pids().at(0) == worker);
}

TEST_CASE("Sandbox.AllowExecutableMemoryLetsATaskRunCodeItWroteAndAllowMprotectLiftsOnlyMprotect" *
          doctest::timeout(60)) {
  Sandbox jit = Sandbox::compute_only().allow_executable_memory();
  CHECK(jit.executable_memory());
  CHECK_FALSE(Sandbox::compute_only().executable_memory());
  procpool::ProcessPool pool({.workers = 1, .sandbox = jit});
  for (const char* how : {"mmap", "mprotect", "pkey_mprotect", "memfd"}) {
    CAPTURE(how);
    CHECK(pool.submit(run_written_code, std::string(how)).get() == 42);
  }
  procpool::ProcessPool only_mprotect({.workers = 1, .sandbox = Sandbox::compute_only().allow("mprotect")});
  CHECK(only_mprotect.submit(run_written_code, std::string("mprotect")).get() == 42);
  CHECK(violation(only_mprotect.submit(run_written_code, std::string("mmap"))) == "mmap");
}

TEST_CASE("Sandbox.TheFilterSendsI386AndX32SyscallsAndExecutableMemoryToTheProfilesAction" * doctest::timeout(30)) {
  using procpool::detail::export_seccomp_filter;
  pid_t self = ::getpid();
  auto kill_filter = export_seccomp_filter(Sandbox::compute_only(), self);
  auto errno_filter = export_seccomp_filter(Sandbox::compute_only(Sandbox::Action::errno_(EPERM)), self);
  auto jit_filter = export_seccomp_filter(Sandbox::compute_only().allow_executable_memory(), self);
  auto files_filter = export_seccomp_filter(Sandbox::read_only_files({"/tmp"}, Sandbox::Action::errno_(EPERM)), self);
  constexpr uint32_t kRefusedWithEperm = SECCOMP_RET_ERRNO | EPERM;
  // The native calls the profile allows; the same numbers of the other ABIs.
  CHECK(run_filter(kill_filter, AUDIT_ARCH_X86_64, __NR_exit_group) == SECCOMP_RET_ALLOW);
  CHECK(run_filter(kill_filter, AUDIT_ARCH_X86_64, __NR_getpid) == SECCOMP_RET_ALLOW);
  for (int i386_call : {1, 20, 252}) {  // exit, getpid, exit_group
    CHECK(run_filter(kill_filter, AUDIT_ARCH_I386, i386_call) == SECCOMP_RET_TRAP);
    CHECK(run_filter(errno_filter, AUDIT_ARCH_I386, i386_call) == kRefusedWithEperm);
  }
  for (int x32_call : {39, 60, 231}) {  // getpid, exit, exit_group
    CHECK(run_filter(kill_filter, AUDIT_ARCH_X86_64, kX32Bit | x32_call) == SECCOMP_RET_TRAP);
    CHECK(run_filter(errno_filter, AUDIT_ARCH_X86_64, kX32Bit | x32_call) == kRefusedWithEperm);
  }
  // PROT_EXEC, also as a high bit set beside it, takes the profile's action.
  for (int call : {__NR_mmap, __NR_mprotect, __NR_pkey_mprotect}) {
    CAPTURE(call);
    CHECK(run_filter(kill_filter, AUDIT_ARCH_X86_64, call, 0, PROT_READ | PROT_WRITE) == SECCOMP_RET_ALLOW);
    CHECK(run_filter(kill_filter, AUDIT_ARCH_X86_64, call, 0, PROT_READ | PROT_EXEC) == SECCOMP_RET_TRAP);
    CHECK(run_filter(kill_filter, AUDIT_ARCH_X86_64, call, 0, (uint64_t{1} << 40) | PROT_EXEC) == SECCOMP_RET_TRAP);
    CHECK(run_filter(errno_filter, AUDIT_ARCH_X86_64, call, 0, PROT_EXEC) == kRefusedWithEperm);
    CHECK(run_filter(jit_filter, AUDIT_ARCH_X86_64, call, 0, PROT_READ | PROT_EXEC) == SECCOMP_RET_ALLOW);
  }
  // Path queries trap for the handler in errno mode too; O_PATH is EACCES.
  CHECK(run_filter(errno_filter, AUDIT_ARCH_X86_64, __NR_newfstatat) == SECCOMP_RET_TRAP);
  CHECK(run_filter(files_filter, AUDIT_ARCH_X86_64, __NR_faccessat2) == SECCOMP_RET_TRAP);
  CHECK(run_filter(files_filter, AUDIT_ARCH_X86_64, __NR_openat, 0, O_RDONLY) == SECCOMP_RET_ALLOW);
  CHECK(run_filter(files_filter, AUDIT_ARCH_X86_64, __NR_openat, 0, O_PATH) == (SECCOMP_RET_ERRNO | EACCES));
  CHECK(run_filter(files_filter, AUDIT_ARCH_X86_64, __NR_openat, 0, O_WRONLY) == kRefusedWithEperm);
  CHECK(run_filter(files_filter, AUDIT_ARCH_X86_64, __NR_statx) == (SECCOMP_RET_ERRNO | ENOSYS));
}

TEST_CASE("Sandbox.AnI386SyscallByInt0x80IsKilledNamedWithItsAbiAndNeverRuns" * doctest::timeout(60)) {
  {  // unconfined, int 0x80's exit_group(42) runs: the worker exits with 42
    procpool::ProcessPool plain({.workers = 1});
    std::string unconfined = violation(plain.submit(foreign_exit, std::string("i386")));
    if (unconfined != "(crashed, signal 0, exit 42)") {
      // Some kernels (ia32_emulation=0; this VM's) fault int 0x80 before
      // any syscall entry, filter included: nothing to refuse here.
      CHECK(unconfined == "(crashed, signal 11, exit -1)");
      MESSAGE(
          "this kernel does not run i386 syscalls (int 0x80 faults): the filter's answer to them is checked "
          "on its program only (TheFilterSendsI386AndX32Syscalls...)");
      return;
    }
  }
  procpool::ProcessPool pool({.workers = 1, .sandbox = Sandbox::compute_only()});
  try {
    pool.submit(foreign_exit, std::string("i386")).get();
    FAIL("int 0x80 returned");
  } catch (const procpool::SandboxViolation& e) {
    CHECK(e.signal() == SIGSYS);
    CHECK(e.syscall() == "exit_group (i386 ABI)");
    CHECK(e.syscall_number() == 252);
    CHECK(std::string(e.what()).find("exit_group (i386 ABI)") != std::string::npos);
  }
  CHECK(pool.submit(tasks::add, 1, 2).get() == 3);
  // errno mode: refused before it ran, and the worker is the same.
  procpool::ProcessPool soft({.workers = 1, .sandbox = Sandbox::compute_only(Sandbox::Action::errno_(EPERM))});
  pid_t worker = soft.worker_pids().at(0);
  CHECK(soft.submit(foreign_exit, std::string("i386")).get() == -EPERM);
  CHECK(soft.worker_pids().at(0) == worker);
}

TEST_CASE("Sandbox.AnX32SyscallIsKilledNamedWithItsAbiAndNeverRuns" * doctest::timeout(60)) {
  // Unconfined it returns ENOSYS on a kernel without CONFIG_X86_X32_ABI, or
  // exits with 42 on one with it; the filter refuses it either way.
  procpool::ProcessPool pool({.workers = 1, .sandbox = Sandbox::read_only_files({"/tmp"})});
  try {
    pool.submit(foreign_exit, std::string("x32")).get();
    FAIL("the x32 syscall returned");
  } catch (const procpool::SandboxViolation& e) {
    CHECK(e.syscall() == "exit_group (x32 ABI)");
    CHECK(e.syscall_number() == (0x40000000 | 231));
  }
  procpool::ProcessPool soft({.workers = 1, .sandbox = Sandbox::compute_only(Sandbox::Action::errno_(EPERM))});
  CHECK(soft.submit(foreign_exit, std::string("x32")).get() == -EPERM);
}
#endif

TEST_CASE("Sandbox.ReadOnlyFilesAnswersStatAndAccessBeneathItsPathsOnly" * doctest::timeout(60)) {
  TempDir dir;
  std::string data = dir.path + "/data.txt";
  {  // unconfined, every probe outside sees the file system
    procpool::ProcessPool plain({.workers = 1});
    for (const char* what : {"stat", "fstatat_empty_path", "access_read", "open_o_path"})
      CHECK(plain.submit(probe, std::string(what), std::string("/etc/passwd")).get() == 0);
    CHECK(plain.submit(probe, std::string("readlink"), std::string("/proc/self/exe")).get() == 0);
  }
  procpool::ProcessPool pool({.workers = 1, .sandbox = Sandbox::read_only_files({dir.path})});
  auto ask = [&](const char* what, const std::string& path) {
    return pool.submit(probe, std::string(what), path).get();
  };
  for (const char* what : {"stat", "lstat", "fstatat_empty_path", "access_read", "faccessat2", "statx", "fstat_of_open",
                           "ifstream", "file_size"}) {
    CAPTURE(what);
    CHECK(ask(what, data) == 0);
    CHECK(ask(what, "/etc/passwd") == EACCES);
  }
  CHECK(ask("stat", dir.path) == 0);
  CHECK(ask("list", dir.path) == 0);
  CHECK(ask("list", "/etc") == EACCES);
  CHECK(ask("access_write", data) == EACCES);
  CHECK(ask("statx_syscall", data) == ENOSYS);
  CHECK(ask("open_o_path", "/etc") == EACCES);
  CHECK(ask("open_o_path", data) == EACCES);
  CHECK(ask("readlink", "/proc/self/exe") == EACCES);
  // As open answers: a path that does not exist is ENOENT (Landlock checks
  // a file that is there), not a leak of more than open already shows.
  CHECK(ask("stat", "/etc/no-such-file-procpool") == ENOENT);
  CHECK(pool.stats().worker_deaths == 0);
}

TEST_CASE("Sandbox.ComputeOnlyAnswersFstatButRefusesEveryPathQuery" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1, .sandbox = Sandbox::compute_only()});
  auto ask = [&](const char* what, const char* path) {
    return pool.submit(probe, std::string(what), std::string(path));
  };
  CHECK(ask("fstat_memfd", "").get() == 0);
  CHECK(ask("fstat_memfd_as_glibc", "").get() == 0);
  CHECK(ask("statx_syscall", "/etc/passwd").get() == ENOSYS);
  CHECK(violation(ask("stat", "/")) == "newfstatat");
  CHECK(violation(ask("fstatat_empty_path", "/etc/passwd")) == "newfstatat");
  CHECK(violation(ask("access_read", "/etc/passwd")) == "access");
  CHECK(violation(ask("readlink", "/proc/self/exe")) == "readlink");
  CHECK(pool.submit(tasks::add, 1, 2).get() == 3);
  // What the user denies is theirs: no answer from the handler.
  procpool::ProcessPool strict({.workers = 1, .sandbox = Sandbox::compute_only().deny("newfstatat")});
  CHECK(violation(strict.submit(probe, std::string("fstat_memfd_as_glibc"), std::string())) == "newfstatat");
  procpool::ProcessPool soft({.workers = 1, .sandbox = Sandbox::compute_only(Sandbox::Action::errno_(EPERM))});
  CHECK(soft.submit(probe, std::string("fstat_memfd"), std::string()).get() == 0);
  CHECK(soft.submit(probe, std::string("stat"), std::string("/")).get() == EPERM);
  CHECK(soft.submit(probe, std::string("fstatat_empty_path"), std::string("/etc/passwd")).get() == EPERM);
  CHECK(soft.stats().worker_deaths == 0);
}

TEST_CASE("Sandbox.ATaskRaisingSigsysItselfDiesBySigsysAndIsReplaced" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1, .sandbox = Sandbox::compute_only(Sandbox::Action::errno_(EPERM))});
  CHECK(violation(pool.submit(raise_sigsys)) == "");  // a SIGSYS death, no syscall to name
  CHECK(pool.submit(tasks::add, 1, 2).get() == 3);
}

TEST_CASE("Sandbox.CrashesAreStillReportedWithTheirBacktraceUnderReadOnlyFiles" * doctest::timeout(60)) {
  TempDir dir;
  procpool::ProcessPool pool({.workers = 1, .sandbox = Sandbox::read_only_files({dir.path})});
  try {
    pool.call<int>("crash", std::string("segv")).get();
    FAIL("no crash");
  } catch (const procpool::SandboxViolation&) {
    FAIL("a crash reported as a violation");
  } catch (const procpool::WorkerCrashed& e) {
    CHECK(e.signal() == SIGSEGV);
    CHECK(e.backtrace().find("tasks::crash") != std::string::npos);
  }
  CHECK(pool.submit(tasks::add, 1, 2).get() == 3);
}
