// SPDX-License-Identifier: MIT
#include <procpool/loop/host_room.hpp>

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
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

// kernel.pid_max, 0 when unknown.
size_t read_pid_max() {
  std::ifstream in("/proc/sys/kernel/pid_max");
  size_t value = 0;
  in >> value;
  return value;
}

// The kernel lets a process past RLIMIT_NPROC when its real user is root
// or it has CAP_SYS_RESOURCE or CAP_SYS_ADMIN (kernel/fork.c).
bool exempt_from_nproc() {
  if (::getuid() == 0) return true;
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("CapEff:")) continue;
    unsigned long long caps = std::strtoull(line.c_str() + 7, nullptr, 16);
    constexpr unsigned kSysAdmin = 21, kSysResource = 24;
    return (caps >> kSysAdmin & 1) != 0 || (caps >> kSysResource & 1) != 0;
  }
  return false;
}

size_t saturating_sum(size_t a, size_t b, size_t c) {
  if (a > SIZE_MAX - b) return SIZE_MAX;
  return a + b > SIZE_MAX - c ? SIZE_MAX : a + b + c;
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

size_t most_processes(const PoolOptions& options) { return saturating_sum(options.workers, options.spare_workers, 3); }

void check_host_room(const PoolOptions& options) {
  // Processes first: a pid range too small is not mended by a ulimit. Only
  // what can never fit is refused: the kernel keeps the first 300 pids for
  // itself (RESERVED_PIDS), and the tasks that exist now are left to
  // fork's EAGAIN (in a pid namespace, /proc/loadavg would count the whole
  // machine's against this namespace's pid_max).
  constexpr size_t kReservedPids = 300;
  size_t processes = most_processes(options);
  size_t pid_max = read_pid_max();
  if (pid_max != 0 && processes > pid_max - std::min(pid_max, kReservedPids))
    throw ResourceLimitExceeded("kernel.pid_max", processes, pid_max,
                                pool_words(options) + " needs " + std::to_string(processes) +
                                    " processes, and the kernel keeps " + std::to_string(kReservedPids) +
                                    " pids for itself (start fewer workers); pids needed");
  rlimit users{};
  if (::getrlimit(RLIMIT_NPROC, &users) == 0 && users.rlim_cur != RLIM_INFINITY && processes > users.rlim_cur &&
      !exempt_from_nproc())
    throw ResourceLimitExceeded("RLIMIT_NPROC", processes, users.rlim_cur,
                                pool_words(options) + " needs " + std::to_string(processes) +
                                    " processes of this user (raise ulimit -u or start fewer workers); processes");
  // Besides each worker's: the sweeper's pidfd and socket, the reactor's
  // epoll, eventfd and timerfd (made with the pool's first descriptor),
  // and those open while a worker is made (spawn with captured output
  // holds six: memfd, socket end, two pipe ends, the bootstrap pair).
  constexpr size_t kSweeper = 2, kReactor = 3, kWhileMaking = 6;
  size_t open = open_descriptors();
  size_t workers = saturating_sum(options.workers, options.spare_workers, 1);  // one replacement on its way
  size_t per_worker = host_descriptors_per_worker(options);
  size_t needed = open + kSweeper + kReactor + kWhileMaking;
  needed = workers > (SIZE_MAX - needed) / per_worker ? SIZE_MAX : needed + workers * per_worker;
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
