// SPDX-License-Identifier: MIT
#pragma once
// What each figure measures, in which unit, and in what order the report
// shows figures and systems. The measuring programs emit figure/param ids;
// everything a reader sees is named here.
#include <string>
#include <vector>

namespace bench {

struct FigureSpec {
  std::string figure, param;  // as emitted
  std::string label, unit;
  bool higher_is_better = false;
};

inline const std::vector<FigureSpec>& catalogue() {
  static const std::vector<FigureSpec> specs = {
      {"rtt", "p50", "awaited no-op round trip, p50", "µs"},
      {"rtt", "p99", "awaited no-op round trip, p99", "µs"},
      {"rtt", "p999", "awaited no-op round trip, p99.9", "µs"},
      {"rtt_blocking", "p50", "blocking no-op round trip, worker hot, p50", "µs"},
      {"rtt_blocking", "p99", "blocking no-op round trip, worker hot, p99", "µs"},
      {"rtt_wait", "p50", "blocking no-op round trip through futures::wait(FIRST_COMPLETED), worker hot, p50", "µs"},
      {"rtt_idle", "p50", "blocking no-op round trip 2 ms apart (worker asleep), p50", "µs"},
      {"rtt_idle", "p99", "blocking no-op round trip 2 ms apart (worker asleep), p99", "µs"},
      {"throughput", "100000", "100,000 no-ops submitted, then awaited", "tasks/s", true},
      {"throughput", "1000000", "1,000,000 no-ops submitted, then awaited", "tasks/s", true},
      {"throughput_gather", "100000", "100,000 no-ops awaited with gather (asyncio style)", "tasks/s", true},
      {"throughput_map", "100000", "100,000 no-ops through map(chunksize=256)", "tasks/s", true},
      {"throughput_map", "1000000", "1,000,000 no-ops through map(chunksize=256)", "tasks/s", true},
      {"map_family", "map", "100,000 no-op elements, map(chunksize=256), all results at once", "elements/s", true},
      {"map_family", "map_each", "100,000 no-op elements, map(return_exceptions, ..., 256): a Result each",
       "elements/s", true},
      {"map_family", "imap", "100,000 no-op elements, imap(..., 256), read in input order", "elements/s", true},
      {"map_family", "imap_unordered", "100,000 no-op elements, imap_unordered(..., 256), read as answered",
       "elements/s", true},
      {"payload_rtt", "64", "echo 64 B, round trip", "µs"},
      {"payload_rtt", "4096", "echo 4 KiB, round trip", "µs"},
      {"payload_rtt", "65536", "echo 64 KiB, round trip", "µs"},
      {"payload_rtt", "1048576", "echo 1 MiB, round trip", "µs"},
      {"payload_rtt", "67108864", "echo 64 MiB, round trip", "µs"},
      {"payload_bw", "64", "echo 64 B, size / round trip", "MB/s", true},
      {"payload_bw", "4096", "echo 4 KiB, size / round trip", "MB/s", true},
      {"payload_bw", "65536", "echo 64 KiB, size / round trip", "MB/s", true},
      {"payload_bw", "1048576", "echo 1 MiB, size / round trip", "MB/s", true},
      {"payload_bw", "67108864", "echo 64 MiB, size / round trip", "MB/s", true},
      {"payload_new_rtt", "1048576", "worker returns a new copy of 1 MiB, round trip", "µs"},
      {"payload_new_rtt", "67108864", "worker returns a new copy of 64 MiB, round trip", "µs"},
      {"payload_new_bw", "1048576", "worker returns a new copy of 1 MiB, size / round trip", "MB/s", true},
      {"payload_new_bw", "67108864", "worker returns a new copy of 64 MiB, size / round trip", "MB/s", true},
      {"scaling", "1", "CPU-bound batch on 1 worker", "s"},
      {"scaling", "2", "CPU-bound batch on 2 workers", "s"},
      {"scaling", "4", "CPU-bound batch on 4 workers", "s"},
      {"speedup", "2", "speed-up, 2 workers vs 1", "×", true},
      {"speedup", "4", "speed-up, 4 workers vs 1 (2 cores)", "×", true},
      {"uneven", "2", "a 300 ms call, then six 10 ms calls, 2 workers: until the six are done", "ms"},
      {"startup", "2", "start-up of 2 workers to first result", "ms"},
      {"shutdown", "2", "shutdown of an idle 2-worker pool", "ms"},
      {"crash_fail", "2", "worker crash → its future fails", "ms"},
      {"crash_replace", "1", "crash → replacement serves the next call (1 worker)", "ms"},
      {"crash_replace", "2", "crash → a call succeeds again (2 workers)", "ms"},
      {"crash_others_failed", "40", "other calls failed beside a crash (of 40)", "calls"},
      {"deadline_fail", "1", "deadline → its future fails with TaskTimeout (1 worker)", "ms"},
      {"deadline_replace", "1", "deadline → replacement serves the next call (1 worker, its spare takes the slot)",
       "ms"},
      {"deadline_replace", "no_spare", "the same with spare_workers = 0 (the replacement is forked)", "ms"},
      {"cancel_running_settle", "1", "cancel() of a running call, until it returns settled", "µs"},
      {"cancel_running_replace", "1", "cancel() of a running call → replacement serves the next call", "ms"},
      {"supervision_rtt", "none", "blocking no-op round trip, worker hot, no deadline (batch mean)", "µs"},
      {"supervision_rtt", "timeout", "the same with a deadline on every call", "µs"},
      {"recycle_throughput", "1", "no-ops with max_tasks_per_child=1 (a new worker per call), 2 workers", "calls/s",
       true},
      {"mem_pending", "100000", "host RSS per pending call (100,000 pending)", "B"},
      {"mem_worker", "2", "memory per idle worker (Pss)", "KiB"},
      // The start-methods group (start_method_figures.cpp and bench/python/
      // start_methods.py), each with the host holding 10 MiB or 1 GiB of
      // extra heap; systems procpool-<method> and python-<method>.
      {"sm_startup", "10MiB", "start methods: 2 workers, constructor to first result, host +10 MiB", "ms"},
      {"sm_startup", "1GiB", "start methods: 2 workers, constructor to first result, host +1 GiB", "ms"},
      {"sm_startup_cold", "10MiB", "start methods: the same, fork server started too, host +10 MiB", "ms"},
      {"sm_startup_cold", "1GiB", "start methods: the same, fork server started too, host +1 GiB", "ms"},
      {"sm_respawn", "10MiB", "start methods: max_tasks_per_child=1, no spare: result → next result, host +10 MiB",
       "ms"},
      {"sm_respawn", "1GiB", "start methods: max_tasks_per_child=1, no spare: result → next result, host +1 GiB", "ms"},
      {"sm_respawn_spare", "10MiB",
       "start methods: the same with 1 spare, 6 calls back to back (mean), "
       "host +10 MiB",
       "ms"},
      {"sm_respawn_spare", "1GiB", "start methods: the same with 1 spare, 6 calls back to back (mean), host +1 GiB",
       "ms"},
      {"sm_respawn_spare_ready", "10MiB",
       "start methods: the same, each call made once the spare is ready, "
       "host +10 MiB",
       "ms"},
      {"sm_respawn_spare_ready", "1GiB",
       "start methods: the same, each call made once the spare is ready, "
       "host +1 GiB",
       "ms"},
      {"sm_crash_replace", "10MiB",
       "start methods: worker SIGKILLed, no spare: crashing submit → next result, "
       "host +10 MiB",
       "ms"},
      {"sm_crash_replace", "1GiB",
       "start methods: worker SIGKILLed, no spare: crashing submit → next result, "
       "host +1 GiB",
       "ms"},
      {"sm_rebuild", "10MiB",
       "start methods: worker killed: its call's failure → a call served again "
       "(Python: a new executor), host +10 MiB",
       "ms"},
      {"sm_rebuild", "1GiB",
       "start methods: worker killed: its call's failure → a call served again "
       "(Python: a new executor), host +1 GiB",
       "ms"},
      {"sm_fork_return", "10MiB", "bare fork() of the host until it returns, host +10 MiB", "ms"},
      {"sm_fork_return", "1GiB", "bare fork() of the host until it returns, host +1 GiB", "ms"},
      {"sm_fork_wait", "10MiB", "bare fork() of the host until the child is reaped, host +10 MiB", "ms"},
      {"sm_fork_wait", "1GiB", "bare fork() of the host until the child is reaped, host +1 GiB", "ms"},
      {"sm_host_rss", "10MiB", "host RSS holding +10 MiB", "MiB"},
      {"sm_host_rss", "1GiB", "host RSS holding +1 GiB", "MiB"},
      {"sandbox_rtt", "none", "blocking no-op round trip, worker hot, forkserver, no sandbox (batch mean)", "µs"},
      {"sandbox_rtt", "compute_only", "the same with Sandbox::compute_only()", "µs"},
      {"sandbox_startup", "none", "start-up of 2 forkserver workers to first result, no sandbox", "ms"},
      {"sandbox_rtt", "read_only_files", "the same with Sandbox::read_only_files({\"/usr/share\"})", "µs"},
      {"sandbox_startup", "compute_only", "the same with Sandbox::compute_only()", "ms"},
      {"sandbox_startup", "read_only_files", "the same with Sandbox::read_only_files({\"/usr/share\"})", "ms"},
      {"sandbox_rtt", "pid_namespace", "the same with Namespaces{.pid = true}, no sandbox", "µs"},
      {"sandbox_startup", "pid_namespace", "the same with Namespaces{.pid = true}, no sandbox", "ms"},
      {"sandbox_enter", "compute_only", "enter_sandbox(compute_only) in a forked child: no_new_privs to filter loaded",
       "µs"},
      {"sandbox_enter", "read_only_files",
       "enter_sandbox(read_only_files({\"/usr/share\"})) in a forked child, "
       "Landlock included",
       "µs"},
      {"sandbox_enter_cpu", "compute_only", "the same, the child's CPU time", "µs"},
      {"sandbox_enter_cpu", "read_only_files", "the same, the child's CPU time", "µs"},
  };
  return specs;
}

// Report order; a system that emitted nothing is left out.
inline const std::vector<std::string>& system_order() {
  static const std::vector<std::string> systems = {
      "procpool",   "procpool-shared", "procpool-fork",     "procpool-forkserver", "procpool-spawn", "procpool-host",
      "python-ppe", "python-fork",     "python-forkserver", "python-spawn",        "python-loky",    "python-bare-fork",
      "floor-spin", "floor-futex",     "floor-copy",        "floor-memfd",         "thread-pool",    "memcpy"};
  return systems;
}

inline std::string system_label(const std::string& system) {
  if (system == "procpool-shared") return "procpool, SharedBytes payload";
  if (system == "python-ppe") return "Python asyncio + ProcessPoolExecutor";
  if (system == "python-loky") return "Python asyncio + loky";
  if (system == "procpool-fork") return "procpool, StartMethod::fork";
  if (system == "procpool-forkserver") return "procpool, StartMethod::forkserver";
  if (system == "procpool-spawn") return "procpool, StartMethod::spawn";
  if (system == "procpool-host") return "procpool's measuring process";
  if (system == "python-fork") return "Python ProcessPoolExecutor, fork";
  if (system == "python-forkserver") return "Python ProcessPoolExecutor, forkserver";
  if (system == "python-spawn") return "Python ProcessPoolExecutor, spawn";
  if (system == "python-bare-fork") return "Python's measuring process";
  if (system == "floor-spin") return "floor: shm ping-pong, spinning";
  if (system == "floor-futex") return "floor: shm ping-pong, futex";
  if (system == "thread-pool") return "floor: in-process thread pool";
  if (system == "memcpy") return "floor: memcpy";
  if (system == "floor-copy") return "floor: copying echo between two processes (4 copies)";
  if (system == "floor-memfd") return "floor: a new sealed memfd, in one process";
  return system;
}

}  // namespace bench
