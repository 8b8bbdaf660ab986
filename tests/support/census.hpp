// SPDX-License-Identifier: MIT
#pragma once
// Counting what a test could leave behind: open fds, /dev/shm names, child
// processes (zombies included), live future states.
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include <procpool/worker/start_method.hpp>

namespace census {

// The suite's start method (--start-method), unless it is spawn: for a
// test whose workers must inherit memory the host mapped before them.
procpool::StartMethod inheriting_start_method();

std::set<int> open_fds();
std::set<std::string> shm_names();
// Children of this process, zombies included.
std::vector<pid_t> children();
// The same, but for each pool's sweeper (procpool/worker/group_sweeper.hpp),
// which lives as long as its pool: its workers and spares.
std::vector<pid_t> worker_children();
// And only those. A sweeper is known by the name it gives itself once it
// runs, so one just started may not be named yet: with `expected`, waits
// (up to 10 s) until that many are.
std::vector<pid_t> sweepers(size_t expected = 0);
bool process_exists(pid_t pid);  // false once it is gone and reaped
// Threads of this process now (/proc/self/task).
size_t thread_count();
// For a subreaper (PR_SET_CHILD_SUBREAPER): reaps the orphans that came to
// it, then says whether all of `pids` are gone.
bool orphans_gone(const std::vector<pid_t>& pids);
// Forks a host process that runs `report` (say, starts a pool it keeps alive
// and returns its workers' pids), sends the pids back, and waits to be
// killed; returns the host's pid, `count` reported pids (empty if they did
// not come) and its pools' sweepers, which outlive a killed host briefly.
struct ForkedHost {
  pid_t pid = -1;
  std::vector<pid_t> reported;
  std::vector<pid_t> sweepers;
  // What a test that killed it waits for: the reported and the sweepers.
  std::vector<pid_t> processes() const {
    std::vector<pid_t> all = reported;
    all.insert(all.end(), sweepers.begin(), sweepers.end());
    return all;
  }
};
// Without `with_zygote`, the host does not call procpool::init(): it can
// make StartMethod::fork pools only, and every process they need is its fork.
ForkedHost fork_host(size_t count, const std::function<std::vector<pid_t>()>& report, bool with_zygote = true);
// Runs `body` in a forked child of this process (for what must not touch
// this one: its credentials, its seccomp filter, its registry) and returns
// the child's exit code: body's result, or -1 if it did not exit normally.
int exit_code_in_child(const std::function<int()>& body);
// What `body` writes to this process's stdout (fd 1) or stderr (fd 2),
// redirected to a file while it runs (so are the workers of a pool made in it).
std::string output_of(int fd, const std::function<void()>& body);
inline std::string stderr_of(const std::function<void()>& body) { return output_of(2, body); }
// Waits until `pred` holds or `timeout` passes; returns pred().
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));

// Snapshot at construction; check() compares with now.
struct Snapshot {
  Snapshot();
  std::set<int> fds;
  std::set<std::string> shm;
  std::vector<pid_t> kids;
};
// Fds and shm names opened since `before` and still open, children alive.
std::string leaks_since(const Snapshot& before);

}  // namespace census

#include <thread>
template <class Pred>
bool census::eventually(Pred pred, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}
