// SPDX-License-Identifier: MIT
#include <procpool/sandbox/namespaces.hpp>

#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include <procpool/common/errno_text.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/sandbox/pid_namespace.hpp>

namespace procpool::detail {
namespace {

bool write_file(const char* path, const char* text) noexcept {
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  size_t n = std::strlen(text);
  bool ok = ::write(fd, text, n) == static_cast<ssize_t>(n);
  ::close(fd);
  return ok;
}

const char* enter(int flags, const IdMaps& maps) noexcept {
  flags &= ~CLONE_NEWPID;  // entered as the worker starts (enter_pid_namespace)
  if (flags == 0) return nullptr;
  bool own_user = needs_user_namespace();
  if (::unshare(flags | (own_user ? CLONE_NEWUSER : 0)) != 0) return "unshare";
  return own_user ? write_id_maps(maps) : nullptr;
}

}  // namespace

IdMaps id_maps() noexcept {
  IdMaps m{};
  std::snprintf(m.uid, sizeof m.uid, "%u %u 1\n", ::geteuid(), ::geteuid());
  std::snprintf(m.gid, sizeof m.gid, "%u %u 1\n", ::getegid(), ::getegid());
  return m;
}

bool needs_user_namespace() noexcept { return ::geteuid() != 0; }

const char* write_id_maps(const IdMaps& maps) noexcept {
  if (!write_file("/proc/self/setgroups", "deny")) return "writing /proc/self/setgroups";
  if (!write_file("/proc/self/uid_map", maps.uid)) return "writing /proc/self/uid_map";
  if (!write_file("/proc/self/gid_map", maps.gid)) return "writing /proc/self/gid_map";
  return nullptr;
}

int namespace_flags(const Namespaces& n) noexcept {
  return (n.network ? CLONE_NEWNET : 0) | (n.ipc ? CLONE_NEWIPC : 0) | (n.mount ? CLONE_NEWNS : 0) |
         (n.uts ? CLONE_NEWUTS : 0) | (n.pid ? CLONE_NEWPID : 0);
}

void check_namespaces(int flags) {
  if (flags == 0) return;
  IdMaps maps = id_maps();
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0)
    throw Error(std::string("cannot check the workers' namespaces: pipe: ") + detail::errno_text(errno));
  pid_t pid = ::fork();
  if (pid == 0) {
    // The worker's own steps, in its order; the report comes from the
    // process where one failed, or from the worker (pid 2) when all passed.
    const char* step = (flags & CLONE_NEWPID) ? enter_pid_namespace(nullptr) : nullptr;
    if (!step) step = enter(flags, maps);
    int err = step ? errno : 0;
    char report[160] = {};
    if (step) {
      size_t n = std::strlen(step);
      std::memcpy(report, step, n < 100 ? n : 100);
    }
    std::memcpy(report + 100, &err, sizeof err);
    (void)!::write(pipe_fds[1], report, sizeof report);
    _exit(0);
  }
  ::close(pipe_fds[1]);
  char report[160] = {};
  ssize_t got = pid > 0 ? ::read(pipe_fds[0], report, sizeof report) : -1;
  ::close(pipe_fds[0]);
  if (pid > 0) ::waitpid(pid, nullptr, 0);
  if (got != static_cast<ssize_t>(sizeof report))
    throw Error("cannot check the workers' namespaces: the probe did not answer");
  int err = 0;
  std::memcpy(&err, report + 100, sizeof err);
  if (err != 0)
    throw Error(std::string("PoolOptions::namespaces: this kernel refuses them (") + report + ": " +
                detail::errno_text(err) +
                "; user namespaces may be disabled, as kernel.unprivileged_userns_clone=0 or "
                "user.max_user_namespaces=0 do); the pool will not run workers without them");
}

const char* enter_namespaces(int flags) noexcept { return enter(flags, id_maps()); }

}  // namespace procpool::detail
