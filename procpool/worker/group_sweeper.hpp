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
// a pidfd and then sends SIGKILL to every group it was told of.
//
// What it is told. One record per message on a SOCK_SEQPACKET socket (one
// send each, so writers on several threads need no lock): +pid when a
// worker exists, -pid when the pool kills its group and reaps it.
// Forgetting comes before the reap, while the unreaped worker still holds
// the id, and a forget the socket cannot take (the sweeper stopped from
// outside) ends the sweeper at once: while the host lives, a group the
// sweeper holds was never given up, so its id names no one else's group.
// (Once the host has died, its workers are reaped by init: a group whose
// leader was its only member frees its id, and the sweeper's kill a moment
// later would reach a process given that id in between; pids are handed
// out in sequence, so it would take the kernel wrapping pid_max round in
// that moment.) The kernel attaches each sender's pid (SO_PASSCRED); the
// sweeper believes the host's records only, not those of a worker started
// with close_fds = false, which holds the host's end too.
//
// Where it comes from. The forkserver's zygote clones it, as the host's
// child, when this process has one (init() was called). Otherwise the host
// forks it with _Fork (no fork handlers), signals blocked: that costs what
// a forked worker's fork does (the host's page tables copied: 95 ms for a
// host of 2 GiB on this project's machines), and the copy then holds,
// copy-on-write, the old version of every page the host changes, as a
// forked worker's does. It runs system calls only, so a host with
// threads can. Either way it holds nothing of the host's but its socket:
// every other descriptor, 0-2 too, is closed (a copy of a host's pipe or
// socket would keep its reader from ever seeing EOF), and it is a process
// group of its own, so the terminal's signals (Ctrl-C, a hang-up) are the
// host's only.
//
// When it sweeps. When the host's pidfd turns readable (the host's exit,
// not one thread's, unlike PR_SET_PDEATHSIG), after reading the records
// still on the socket. At end of stream with the host alive (it exec'd
// another program) it leaves without sweeping.
//
// A clean shutdown kills it with SIGKILL and reaps it: the pool has killed
// and reaped its workers' groups by then, and the sweeper kills nothing
// unless it sees the host exit.
#include <sys/types.h>

#include <atomic>

#include <procpool/common/unique_fd.hpp>

namespace procpool::detail {

// The sweeper's life, in a child of the host `host` (forked or cloned by
// the zygote); `channel` is its end of the socket.
[[noreturn]] void become_sweeper(int channel, pid_t host) noexcept;

class GroupSweeper {
 public:
  GroupSweeper() noexcept = default;
  GroupSweeper(const GroupSweeper&) = delete;
  GroupSweeper& operator=(const GroupSweeper&) = delete;
  ~GroupSweeper() { stop(); }

  // Starts the process. Throws procpool::Error naming the step that failed
  // (socketpair, setsockopt, fork, pidfd_open).
  void start();
  // The group whose id is `pgid` (a worker's pid) is to be killed if the
  // host dies; forget it before reaping its worker. Any thread. A watch the
  // socket cannot take is dropped (the group is then only the pool's to
  // kill); a forget it cannot take ends the sweeper (see above).
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
  std::atomic<int> channel_{-1};   // the host's end of the socket; -1 once stopped
  std::atomic<bool> gone_{false};  // sent SIGKILL after a lost forget
};

}  // namespace procpool::detail
