// SPDX-License-Identifier: MIT
// Speed on a bad day: procpool beside its floors while other programs keep
// the CPUs busy, and on an idle machine, in one run.
//   procpool_contention_bench [--rounds N] [--hogs K] [--calls N] [--quick]
// Each round measures, with no hog and then with K busy-looping processes
// (default: one per CPU, at the default priority, as an unrelated program
// would run): 100,000 no-ops submitted then awaited (procpool, 2 workers;
// again with prefetch_per_worker set to 16, so without pacing) beside the
// same through a minimal in-process thread pool (2 threads), and
// the hot blocking round trip (procpool) beside two spinning processes
// ping-ponging a counter. Prints medians over rounds and the ratios the
// issue's targets are stated in: throughput / thread pool's (higher is
// better) and round trip / spin floor's (lower is better); and how often
// the submitting thread was preempted during procpool's run (its
// involuntary context switches: a worker woken onto its CPU is one cause).
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.hpp"
#include "floors.hpp"
#include "timed_calls.hpp"

namespace {

void noop() {}
PROCPOOL_REGISTER(noop);
void floor_noop() {}

// Busy-looping children: the other programs of a busy machine.
class Hogs {
 public:
  explicit Hogs(int count) {
    for (int i = 0; i < count; ++i) {
      pid_t pid = fork();
      if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
      if (pid == 0) {
        for (;;) asm volatile("" ::: "memory");
      }
      pids_.push_back(pid);
    }
  }
  ~Hogs() {
    for (pid_t pid : pids_) ::kill(pid, SIGKILL);
    for (pid_t pid : pids_) ::waitpid(pid, nullptr, 0);
  }
  Hogs(const Hogs&) = delete;
  Hogs& operator=(const Hogs&) = delete;

 private:
  std::vector<pid_t> pids_;
};

double thread_pool_throughput(int calls) {
  bench::MinimalThreadPool pool(2);
  std::vector<std::future<void>> futures;
  futures.reserve(static_cast<size_t>(calls));
  auto t0 = bench::Clock::now();
  for (int i = 0; i < calls; ++i) futures.push_back(pool.submit(floor_noop));
  for (auto& f : futures) f.get();
  return calls / (bench::micros(bench::Clock::now() - t0) / 1e6);
}

// This thread's involuntary context switches so far.
long preemptions() {
  rusage usage{};
  getrusage(RUSAGE_THREAD, &usage);
  return usage.ru_nivcsw;
}

struct Row {
  std::vector<double> procpool_tps, fixed_tps, floor_tps, procpool_rtt, spin_rtt, preempted;
};

void print_row(const char* label, const Row& r) {
  double tp = bench::median(r.procpool_tps), fixed = bench::median(r.fixed_tps), ftp = bench::median(r.floor_tps);
  double rtt = bench::median(r.procpool_rtt), spin = bench::median(r.spin_rtt);
  std::printf("| %s | %.2f M/s | %.0f | %.2f M/s | %.2f M/s | %.2f× | %.2f µs | %.2f µs | %.1f× |\n", label, tp / 1e6,
              bench::median(r.preempted), fixed / 1e6, ftp / 1e6, tp / ftp, rtt, spin, rtt / spin);
}

}  // namespace

int main(int argc, char** argv) {
  procpool::init(argc, argv);
  int rounds = 5, calls = 100000, round_trips = 20000;
  int hogs = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--rounds" && i + 1 < argc) rounds = std::atoi(argv[++i]);
    else if (a == "--hogs" && i + 1 < argc) hogs = std::atoi(argv[++i]);
    else if (a == "--calls" && i + 1 < argc) calls = std::atoi(argv[++i]);
    else if (a == "--quick") rounds = 1, calls = 5000, round_trips = 500;
    else {
      std::fprintf(stderr, "usage: %s [--rounds N] [--hogs K] [--calls N] [--quick]\n", argv[0]);
      return 2;
    }
  }
  procpool::ProcessPool pool({.workers = 2});
  // The same with the prefetch count set, so not paced by the workers'
  // speed (pool_options.hpp): the difference pacing makes, in the same run.
  procpool::ProcessPool fixed({.workers = 2, .prefetch_per_worker = 16});
  pool.submit(noop).get();
  fixed.submit(noop).get();
  Row idle, busy;
  for (int r = 0; r < rounds; ++r) {
    for (Row* row : {&idle, &busy}) {
      Hogs others(row == &busy ? hogs : 0);
      long before = preemptions();
      row->procpool_tps.push_back(bench::submit_all_then_get(pool, noop, calls));
      row->preempted.push_back(static_cast<double>(preemptions() - before));
      row->fixed_tps.push_back(bench::submit_all_then_get(fixed, noop, calls));
      row->floor_tps.push_back(thread_pool_throughput(calls));
      row->procpool_rtt.push_back(bench::median(bench::blocking_round_trips(pool, noop, round_trips)));
      row->spin_rtt.push_back(bench::median(bench::ping_pong(bench::Wait::kSpin, 100, round_trips)));
    }
    std::fprintf(stderr, "round %d of %d done\n", r + 1, rounds);
  }
  std::printf("%d no-ops submitted then awaited; hot blocking round trip p50; medians of %d rounds\n\n", calls, rounds);
  std::printf(
      "| machine | procpool | submitter preempted | prefetch 16 set | thread pool | ratio | round trip | spin floor | "
      "ratio |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  print_row("idle", idle);
  std::string label = std::to_string(hogs) + " busy loops";
  print_row(label.c_str(), busy);
}
