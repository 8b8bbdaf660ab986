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
      {"startup", "2", "start-up of 2 workers to first result", "ms"},
      {"shutdown", "2", "shutdown of an idle 2-worker pool", "ms"},
      {"crash_fail", "2", "worker crash → its future fails", "ms"},
      {"crash_replace", "1", "crash → replacement serves the next call (1 worker)", "ms"},
      {"crash_replace", "2", "crash → a call succeeds again (2 workers)", "ms"},
      {"crash_others_failed", "40", "other calls failed beside a crash (of 40)", "calls"},
      {"deadline_fail", "1", "deadline → its future fails with TaskTimeout (1 worker)", "ms"},
      {"deadline_replace", "1", "deadline → replacement serves the next call (1 worker, its spare takes the slot)", "ms"},
      {"deadline_replace", "no_spare", "the same with spare_workers = 0 (the replacement is forked)", "ms"},
      {"cancel_running_settle", "1", "cancel() of a running call, until it returns settled", "µs"},
      {"cancel_running_replace", "1", "cancel() of a running call → replacement serves the next call", "ms"},
      {"supervision_rtt", "none", "blocking no-op round trip, worker hot, no deadline (batch mean)", "µs"},
      {"supervision_rtt", "timeout", "the same with a deadline on every call", "µs"},
      {"recycle_throughput", "1", "no-ops with max_tasks_per_child=1 (a new worker per call), 2 workers", "calls/s",
       true},
      {"mem_pending", "100000", "host RSS per pending call (100,000 pending)", "B"},
      {"mem_worker", "2", "memory per idle worker (Pss)", "KiB"},
  };
  return specs;
}

// Report order; a system that emitted nothing is left out.
inline const std::vector<std::string>& system_order() {
  static const std::vector<std::string> systems = {"procpool",    "procpool-shared", "python-ppe", "python-loky",
                                                   "floor-spin",  "floor-futex",     "floor-copy", "floor-memfd",
                                                   "thread-pool", "memcpy"};
  return systems;
}

inline std::string system_label(const std::string& system) {
  if (system == "procpool-shared") return "procpool, SharedBytes payload";
  if (system == "python-ppe") return "Python asyncio + ProcessPoolExecutor";
  if (system == "python-loky") return "Python asyncio + loky";
  if (system == "floor-spin") return "floor: shm ping-pong, spinning";
  if (system == "floor-futex") return "floor: shm ping-pong, futex";
  if (system == "thread-pool") return "floor: in-process thread pool";
  if (system == "memcpy") return "floor: memcpy";
  if (system == "floor-copy") return "floor: copying echo between two processes (4 copies)";
  if (system == "floor-memfd") return "floor: a new sealed memfd, in one process";
  return system;
}

}  // namespace bench
