// SPDX-License-Identifier: MIT
#include "census.hpp"

#include <procpool/procpool.hpp>
#include <procpool/worker/forkserver.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#ifdef PROCPOOL_COVERAGE
extern "C" void __gcov_dump();  // libgcov (GCC): writes this process's line counts
#endif

namespace census {

std::set<int> open_fds() {
  std::set<int> out;
  if (DIR* d = opendir("/proc/self/fd")) {
    int self = dirfd(d);
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      int fd = std::stoi(e->d_name);
      if (fd != self) out.insert(fd);
    }
    closedir(d);
  }
  return out;
}

std::set<std::string> shm_names() {
  std::set<std::string> out;
  if (DIR* d = opendir("/dev/shm")) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') out.insert(e->d_name);
    closedir(d);
  }
  return out;
}

namespace {
// Children of this process; with a name, only those whose command name
// is (`named`) or is not (!`named`) that name.
std::vector<pid_t> children_where(const std::string& name, bool named) {
  std::vector<pid_t> out;
  pid_t self = getpid();
  if (DIR* d = opendir("/proc")) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      std::ifstream stat(std::string("/proc/") + e->d_name + "/stat");
      std::string line;
      if (!std::getline(stat, line)) continue;
      // pid (comm) state ppid ...: comm may hold spaces, so parse after ')'.
      auto close = line.rfind(')');
      if (close == std::string::npos) continue;
      std::istringstream rest(line.substr(close + 2));
      char state;
      pid_t ppid;
      rest >> state >> ppid;
      pid_t pid = static_cast<pid_t>(std::stoi(e->d_name));
      auto open = line.find('(');
      if (!name.empty() && open != std::string::npos && (line.substr(open + 1, close - open - 1) == name) != named)
        continue;
      // The forkserver's zygote lives as long as this process.
      if (ppid == self && pid != procpool::detail::zygote_pid()) out.push_back(pid);
    }
    closedir(d);
  }
  return out;
}
}  // namespace

std::vector<pid_t> children() { return children_where("", false); }
std::vector<pid_t> worker_children() { return children_where("procpool-sweep", false); }
std::vector<pid_t> sweepers(size_t expected) {
  std::vector<pid_t> named;
  (void)eventually(
      [&] {
        named = children_where("procpool-sweep", true);
        return named.size() >= expected;
      },
      std::chrono::seconds(10));
  return named;
}

procpool::StartMethod inheriting_start_method() {
  auto m = procpool::default_start_method().value_or(procpool::StartMethod::fork);
  return m == procpool::StartMethod::spawn ? procpool::StartMethod::fork : m;
}

bool process_exists(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

bool orphans_gone(const std::vector<pid_t>& pids) {
  while (waitpid(-1, nullptr, WNOHANG) > 0) {
  }
  for (pid_t p : pids)
    if (process_exists(p)) return false;
  return true;
}

ForkedHost fork_host(size_t count, const std::function<std::vector<pid_t>()>& report, bool with_zygote) {
  ForkedHost host;
  int fds[2];
  if (pipe(fds) != 0) return host;
  host.pid = fork();
  if (host.pid == 0) {
    close(fds[0]);
    if (with_zygote) procpool::init(0, nullptr);  // a zygote of its own, for forkserver pools
    std::vector<pid_t> pids = report();
    std::vector<pid_t> swept = sweepers(1);  // every caller's host makes one pool
    pids.push_back(static_cast<pid_t>(swept.size()));
    pids.insert(pids.end(), swept.begin(), swept.end());
    (void)!write(fds[1], pids.data(), pids.size() * sizeof(pid_t));
    for (;;) pause();
  }
  close(fds[1]);
  auto read_pids = [&](size_t n) {
    std::vector<pid_t> pids(n);
    size_t want = n * sizeof(pid_t), got = 0;
    while (got < want) {
      ssize_t r = read(fds[0], reinterpret_cast<char*>(pids.data()) + got, want - got);
      if (r <= 0) return std::vector<pid_t>();
      got += static_cast<size_t>(r);
    }
    return pids;
  };
  if (host.pid > 0) {
    host.reported = read_pids(count);
    auto swept = read_pids(1);
    if (!host.reported.empty() && swept.size() == 1 && swept[0] >= 0 && swept[0] < 64)
      host.sweepers = read_pids(static_cast<size_t>(swept[0]));
  }
  close(fds[0]);
  return host;
}

int exit_code_in_child(const std::function<int()>& body) {
  pid_t child = fork();
  if (child < 0) return -1;
  if (child == 0) {
    int code = 99;
    try {
      code = body();
    } catch (...) {
    }
    std::fflush(nullptr);
#ifdef PROCPOOL_COVERAGE
    __gcov_dump();  // a coverage build: what the child ran counts too (_exit would lose it)
#endif
    _exit(code);
  }
  int status = 0;
  if (waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

std::string output_of(int fd, const std::function<void()>& body) {
  std::FILE* stream = fd == 1 ? stdout : stderr;
  std::string path = "/tmp/procpool_output_" + std::to_string(fd) + "_" + std::to_string(::getpid());
  std::fflush(stream);
  int saved = ::dup(fd);
  int file = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (saved < 0 || file < 0 || ::dup2(file, fd) < 0) return "(fd " + std::to_string(fd) + " could not be redirected)";
  ::close(file);
  body();
  std::fflush(stream);
  ::dup2(saved, fd);
  ::close(saved);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::remove(path.c_str());
  return text.str();
}

size_t thread_count() {
  size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
  }
  return n;
}

Snapshot::Snapshot() : fds(open_fds()), shm(shm_names()), kids(children()) {}

std::string leaks_since(const Snapshot& before) {
  std::string out;
  for (int fd : open_fds())
    if (!before.fds.count(fd)) out += "fd " + std::to_string(fd) + " still open; ";
  for (auto& n : shm_names())
    if (!before.shm.count(n)) out += "/dev/shm/" + n + " left behind; ";
  for (pid_t p : children()) {
    bool old = false;
    for (pid_t q : before.kids) old |= p == q;
    if (!old) out += "child " + std::to_string(p) + " not reaped; ";
  }
  return out;
}

}  // namespace census
