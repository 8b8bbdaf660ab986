// SPDX-License-Identifier: MIT
#pragma once
// The sweeper: a small process each pool starts, which kills its workers'
// process groups when the host dies without shutting the pool down
// (SIGKILL, a crash, exit() with the pool still alive).
//
// Why a process. A worker dies with the host (PR_SET_PDEATHSIG), and what
// its tasks fork dies with the worker (the fork handlers in
// worker_process.cpp). But posix_spawn, system() and popen() run no fork
// handlers: their children are in the worker's process group, which the
// pool kills whenever a worker goes, and nothing is left to kill the group
// once the host itself is gone. The sweeper is: it watches the host through
// a pidfd (the host's exit, not one thread's, unlike PR_SET_PDEATHSIG) and
// then sends SIGKILL to every group it was told of.
//
// What it is told. One record per write on a pipe (4 bytes: atomic on a
// pipe, so writers on several threads need no lock): +pid when a worker
// exists, -pid when the pool kills its group and reaps it. Forgetting
// comes before the reap, while the unreaped worker still holds the id: a
// group the sweeper kills was never given up by the pool, so its id names
// no one else's group.
//
// Where it comes from. The forkserver's zygote forks it when this process
// has one (init() was called), as the host's child: a fork of the host
// copies its page tables, 95 ms for a host of 2 GiB on this project's
// machines, which the forkserver method exists to avoid. Otherwise the host
// forks it with _Fork (no fork handlers); it runs system calls only, so a
// host with threads can. Either way it holds nothing of the host's but the
// pipe's read end: every other descriptor is closed (a copy of a host's
// pipe or socket would keep its reader from ever seeing EOF).
// Its own process group keeps the terminal's signals (Ctrl-C, a hang-up)
// for the host, which a Ctrl-C would otherwise take down with it.
//
// A clean shutdown kills it with SIGKILL and reaps it: the pool has killed
// and reaped its workers' groups by then, and the sweeper kills nothing
// unless it sees the host exit.
#include <sys/types.h>

#include <atomic>

#include <procpool/common/unique_fd.hpp>

namespace procpool::detail {

// The sweeper's life, in a child of the host `host` (forked or cloned by
// the zygote); `channel` is the pipe's read end.
[[noreturn]] void become_sweeper(int channel, pid_t host) noexcept;

class GroupSweeper {
 public:
  GroupSweeper() noexcept = default;
  GroupSweeper(const GroupSweeper&) = delete;
  GroupSweeper& operator=(const GroupSweeper&) = delete;
  ~GroupSweeper() { stop(); }

  // Starts the process. Throws procpool::Error naming the step that failed
  // (pipe, fork).
  void start();
  // The group whose id is `pgid` (a worker's pid) is to be killed if the
  // host dies; forget it before reaping its worker. Any thread. A record the
  // pipe cannot take (the sweeper stopped from outside for 16,384 records)
  // is dropped: the group is then only the pool's to kill.
  void watch(pid_t pgid) noexcept { send(pgid); }
  void forget(pid_t pgid) noexcept { send(-pgid); }
  // Kills and reaps the process; it sweeps nothing. Call once the pool has
  // reaped its workers, with no watch or forget still under way. Idempotent.
  void stop() noexcept;

  pid_t pid() const noexcept { return pid_; }

 private:
  void send(pid_t record) noexcept;

  pid_t pid_ = -1;
  UniqueFd pidfd_;
  std::atomic<int> channel_{-1};  // the pipe's write end; -1 once stopped
};

}  // namespace procpool::detail
