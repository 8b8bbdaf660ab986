// SPDX-License-Identifier: MIT
#include <procpool/loop/host_room.hpp>

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include <procpool/common/errors.hpp>

namespace procpool::detail {
namespace {

// Descriptors open in this process now, /proc/self/fd's own one aside.
size_t open_descriptors() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) return 0;  // no /proc: the pool reports EMFILE when it meets it
  size_t count = 0;
  while (const dirent* entry = ::readdir(dir))  // NOLINT(concurrency-mt-unsafe): this DIR is ours alone
    if (entry->d_name[0] != '.') ++count;
  ::closedir(dir);
  return count > 0 ? count - 1 : 0;
}

// kernel.pid_max, and the tasks (threads) that hold pids now: the fourth
// field of /proc/loadavg is "runnable/total". 0 when unknown.
size_t read_pid_max() {
  std::ifstream in("/proc/sys/kernel/pid_max");
  size_t value = 0;
  in >> value;
  return value;
}

size_t tasks_now() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen, tasks;
  in >> one >> five >> fifteen >> tasks;
  auto slash = tasks.find('/');
  if (slash == std::string::npos) return 0;
  try {
    return std::stoul(tasks.substr(slash + 1));
  } catch (const std::exception&) {
    return 0;
  }
}

// The kernel lets a process past RLIMIT_NPROC when its real user is root
// or it has CAP_SYS_RESOURCE or CAP_SYS_ADMIN (kernel/fork.c).
bool exempt_from_nproc() {
  if (::getuid() == 0) return true;
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("CapEff:")) continue;
    unsigned long long caps = std::stoull(line.substr(7), nullptr, 16);
    constexpr unsigned kSysAdmin = 21, kSysResource = 24;
    return (caps >> kSysAdmin & 1) != 0 || (caps >> kSysResource & 1) != 0;
  }
  return false;
}

std::string pool_words(const PoolOptions& options) {
  std::string words = "a pool of " + std::to_string(options.workers) + " workers";
  if (options.spare_workers) words += " and " + std::to_string(options.spare_workers) + " spare";
  return words;
}

}  // namespace

size_t host_descriptors_per_worker(const PoolOptions& options) {
  return options.worker_output == WorkerOutput::capture ? 5 : 3;
}

size_t most_processes(const PoolOptions& options) { return options.workers + options.spare_workers + 3; }

void check_host_room(const PoolOptions& options) {
  // Processes first: a pid range too small is not mended by a ulimit.
  size_t processes = most_processes(options);
  size_t pid_max = read_pid_max();
  size_t tasks = tasks_now();
  if (pid_max != 0 && tasks + processes > pid_max)
    throw ResourceLimitExceeded("kernel.pid_max", tasks + processes, pid_max,
                                pool_words(options) + " needs " + std::to_string(processes) +
                                    " processes, besides the " + std::to_string(tasks) +
                                    " tasks of this machine (start fewer workers); pids needed");
  rlimit users{};
  if (::getrlimit(RLIMIT_NPROC, &users) == 0 && users.rlim_cur != RLIM_INFINITY && processes > users.rlim_cur &&
      !exempt_from_nproc())
    throw ResourceLimitExceeded("RLIMIT_NPROC", processes, users.rlim_cur,
                                pool_words(options) + " needs " + std::to_string(processes) +
                                    " processes of this user (raise ulimit -u or start fewer workers); processes");
  // Each process but the sweeper and the zygote is a worker with its
  // descriptors; a few more are open while one is being made (the socket
  // pair and the segment's memfd).
  constexpr size_t kWhileForking = 4;
  size_t open = open_descriptors();
  size_t workers = options.workers + options.spare_workers + 1;
  size_t per_worker = host_descriptors_per_worker(options);
  size_t needed = open + workers * per_worker + kWhileForking;
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY && needed > files.rlim_cur) {
    std::string hard = files.rlim_max == RLIM_INFINITY ? "unlimited" : std::to_string(files.rlim_max);
    throw ResourceLimitExceeded("RLIMIT_NOFILE", needed, files.rlim_cur,
                                pool_words(options) + " needs " + std::to_string(per_worker) +
                                    " descriptors per worker in the host, besides the " + std::to_string(open) +
                                    " open now (raise the soft limit, ulimit -n, up to the hard limit of " + hard +
                                    ", or start fewer workers); descriptors needed");
  }
}

}  // namespace procpool::detail
