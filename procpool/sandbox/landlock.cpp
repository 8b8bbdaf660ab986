// SPDX-License-Identifier: MIT
#include <procpool/sandbox/landlock.hpp>

#include <fcntl.h>
#include <linux/landlock.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <procpool/common/errno_text.hpp>
#include <procpool/common/errors.hpp>

namespace procpool::detail {
namespace {

// Every right of Landlock ABI 1 (bits 0-12): what the ruleset handles is
// denied unless a rule grants it. Later ABIs' rights (refer, truncate,
// ioctl on devices) are left out so that one ruleset works on every
// kernel with Landlock; they need a write or make right first anyway, or
// (ioctl) a device, which no readable path should contain.
constexpr __u64 kHandledAccess = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1;
constexpr __u64 kReadDirectory = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR;

long landlock_abi() noexcept {
  return ::syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
}

}  // namespace

void check_readable_paths(const std::vector<std::string>& paths) {
  if (paths.empty()) return;
  if (landlock_abi() < 1)
    throw Error(std::string("sandbox: read_only_files needs Landlock (Linux 5.13 or later, with landlock among the "
                            "LSMs), which this kernel refuses: ") +
                detail::errno_text(errno) + "; the pool will not run workers with more access than asked");
  for (const std::string& path : paths) {
    struct stat st {};
    if (path.empty() || path[0] != '/')
      throw Error("sandbox: read_only_files path '" + path + "' is not absolute (workers run in /)");
    if (::stat(path.c_str(), &st) != 0)
      throw Error("sandbox: read_only_files path '" + path + "': " + detail::errno_text(errno));
  }
}

const char* restrict_to_readable_paths(const std::vector<std::string>& paths) noexcept {
  if (paths.empty()) return nullptr;
  landlock_ruleset_attr attr{};
  attr.handled_access_fs = kHandledAccess;
  int ruleset = static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0));
  if (ruleset < 0) return "landlock_create_ruleset";
  const char* failed = nullptr;
  for (const std::string& path : paths) {
    int fd = ::open(path.c_str(), O_PATH | O_CLOEXEC);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0) {
      failed = "opening a read_only_files path";
    } else {
      // Directory rights on a file are refused (EINVAL): a file gets read only.
      landlock_path_beneath_attr beneath{};
      beneath.allowed_access = S_ISDIR(st.st_mode) ? kReadDirectory : LANDLOCK_ACCESS_FS_READ_FILE;
      beneath.parent_fd = fd;
      if (::syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &beneath, 0) != 0)
        failed = "landlock_add_rule";
    }
    int err = errno;
    if (fd >= 0) ::close(fd);
    if (failed) {
      ::close(ruleset);
      errno = err;
      return failed;
    }
  }
  if (::syscall(SYS_landlock_restrict_self, ruleset, 0) != 0) failed = "landlock_restrict_self";
  int err = errno;
  ::close(ruleset);
  errno = err;
  return failed;
}

}  // namespace procpool::detail
