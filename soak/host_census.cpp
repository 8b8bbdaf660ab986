// SPDX-License-Identifier: MIT
#include "host_census.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace soak {
namespace {

namespace fs = std::filesystem;

template <class Set>
std::string list(const Set& items) {
  std::ostringstream out;
  size_t shown = 0;
  for (const auto& item : items) {
    if (shown++ == 8) {
      out << " ...";
      break;
    }
    out << (shown > 1 ? " " : "") << item;
  }
  return out.str();
}

template <class Set>
Set added(const Set& before, const Set& now) {
  Set extra;
  for (const auto& item : now)
    if (!before.count(item)) extra.insert(item);
  return extra;
}

}  // namespace

HostCensus HostCensus::take() {
  HostCensus c;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc/self/fd", ec)) {
    int fd = -1;
    std::string name = entry.path().filename();
    std::from_chars(name.data(), name.data() + name.size(), fd);
    c.fds.insert(fd);
  }
  // The iterator's own descriptor is listed but closed by now.
  for (auto it = c.fds.begin(); it != c.fds.end();) it = ::fcntl(*it, F_GETFD) < 0 ? c.fds.erase(it) : std::next(it);
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator("/proc/self/task", ec)) ++c.threads;
  pid_t self = getpid();
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    std::string name = entry.path().filename();
    if (name.empty() || name[0] < '0' || name[0] > '9') continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    pid_t ppid = 0;
    std::istringstream rest(line.substr(close + 2));
    rest >> state >> ppid;
    if (ppid != self) continue;
    pid_t pid = std::stoi(name);
    c.children.insert(pid);
    if (state == 'Z') c.zombies.insert(pid);
  }
  for (const auto& entry : fs::directory_iterator("/dev/shm", ec)) c.shm.insert(entry.path().filename());
  return c;
}

std::string HostCensus::leaks(const HostCensus& before, const HostCensus& now) {
  std::string found;
  auto note = [&](const std::string& what) { found += (found.empty() ? "" : "; ") + what; };
  if (auto fds = added(before.fds, now.fds); !fds.empty()) note("fds " + list(fds));
  if (now.threads > before.threads)
    note(std::to_string(now.threads - before.threads) + " threads (" + std::to_string(now.threads) + " now)");
  if (auto kids = added(before.children, now.children); !kids.empty()) note("child processes " + list(kids));
  if (!now.zombies.empty()) note("zombies " + list(now.zombies));
  if (auto shm = added(before.shm, now.shm); !shm.empty()) note("/dev/shm names " + list(shm));
  return found;
}

uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace soak
