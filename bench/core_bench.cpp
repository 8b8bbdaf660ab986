// SPDX-License-Identifier: MIT
// procpool core benchmark: round-trip latency, throughput, 1 MiB echo,
// pool start-up/teardown and the cost of a worker crash, each the median of
// several rounds with its spread, next to the targets and Python's figures.
//
//   procpool_core_bench [--rounds N] [--quick]
#include <procpool/procpool.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "bench_util.hpp"

// ---- the task functions ----

void noop() {}
PROCPOOL_REGISTER(noop);

std::vector<char> echo(std::vector<char> bytes) { return bytes; }
PROCPOOL_REGISTER(echo);

__attribute__((no_sanitize("undefined"))) void segfault() {
  // Both volatile: the compiler can neither see that p is null nor drop the store.
  volatile int* volatile p = nullptr;
  *p = 1;
}
PROCPOOL_REGISTER(segfault);

namespace {

using bench::Clock;
using bench::Figure;
using bench::micros;

struct Config {
  int rounds = 5;
  int warmup = 2000;             // no-op calls before timing
  int round_trips = 20000;       // timed one-at-a-time calls per round
  int throughput_tasks = 100000;  // submitted, then awaited, per round
  int echo_calls = 50;           // timed 1 MiB echoes per round
  int pool_samples = 10;         // pools started and destroyed per round
  int crash_samples = 5;         // crashes per round
};

constexpr size_t kMiB = size_t{1} << 20;

// Keeps the compiler from dropping a store to memory it cannot see used.
inline void clobber(void* p) { asm volatile("" : : "r"(p) : "memory"); }

// 1. One call at a time: returns {p50, p99} in µs.
std::pair<double, double> round_trip(procpool::ProcessPool& pool, const Config& c) {
  std::vector<double> us;
  us.reserve(static_cast<size_t>(c.round_trips));
  for (int i = 0; i < c.round_trips; ++i) {
    auto t0 = Clock::now();
    pool.submit(noop).get();
    us.push_back(micros(Clock::now() - t0));
  }
  return {bench::percentile(us, 0.5), bench::percentile(us, 0.99)};
}

// 2. Submit them all, then await them all: tasks/s.
double throughput(procpool::ProcessPool& pool, const Config& c) {
  std::vector<procpool::Future<void>> futures;
  futures.reserve(static_cast<size_t>(c.throughput_tasks));
  auto t0 = Clock::now();
  for (int i = 0; i < c.throughput_tasks; ++i) futures.push_back(pool.submit(noop));
  for (auto& f : futures) f.get();
  double s = micros(Clock::now() - t0) / 1e6;
  return c.throughput_tasks / s;
}

// 3. 1 MiB echo: median µs per round trip.
double echo_round_trip(procpool::ProcessPool& pool, const Config& c, const std::vector<char>& payload) {
  std::vector<double> us;
  for (int i = 0; i < c.echo_calls; ++i) {
    auto t0 = Clock::now();
    std::vector<char> back = pool.submit(echo, payload).get();
    us.push_back(micros(Clock::now() - t0));
    if (back.size() != payload.size() || back.back() != payload.back()) {
      std::fprintf(stderr, "echo returned %zu bytes instead of %zu\n", back.size(), payload.size());
      std::exit(1);
    }
  }
  return bench::median(us);
}

// 3'. The ceiling: memcpy of 1 MiB (cache-hot, as the echo's buffers are): µs.
double memcpy_1mib(const std::vector<char>& src) {
  std::vector<char> dst(src.size());
  constexpr int kReps = 200;
  std::memcpy(dst.data(), src.data(), src.size());  // fault the pages in
  std::vector<double> us;
  for (int i = 0; i < kReps; ++i) {
    auto t0 = Clock::now();
    std::memcpy(dst.data(), src.data(), src.size());
    clobber(dst.data());
    us.push_back(micros(Clock::now() - t0));
  }
  return bench::median(us);
}

// 4. Start-up to first result, and destruction of the idle pool: median µs.
std::pair<double, double> pool_lifecycle(const Config& c) {
  std::vector<double> start_us, stop_us;
  for (int i = 0; i < c.pool_samples; ++i) {
    std::optional<procpool::ProcessPool> pool;
    auto t0 = Clock::now();
    pool.emplace(procpool::PoolOptions{.workers = 2});
    pool->submit(noop).get();
    auto t1 = Clock::now();
    pool.reset();
    auto t2 = Clock::now();
    start_us.push_back(micros(t1 - t0));
    stop_us.push_back(micros(t2 - t1));
  }
  return {bench::median(start_us), bench::median(stop_us)};
}

// Waits for a future that must fail with WorkerCrashed; returns when it did.
Clock::time_point await_crash(procpool::Future<void>& f) {
  try {
    f.get();
  } catch (const procpool::WorkerCrashed&) {
    return Clock::now();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "the crashing task failed with something else: %s\n", e.what());
    std::exit(1);
  }
  std::fprintf(stderr, "the crashing task did not fail\n");
  std::exit(1);
}

struct CrashFigures {
  double busy_detect_us;  // 2 busy-ish workers: submit -> WorkerCrashed
  double detect_us;       // 1 worker: submit -> WorkerCrashed
  double serve_us;        // 1 worker: submit of the crash -> next no-op done
  double serve_after_us;  // 1 worker: WorkerCrashed -> next no-op done
  int lost;               // no-ops that failed beside a crash (should be 0)
};

// 5. Crash cost.
CrashFigures crash_cost(const Config& c) {
  std::vector<double> busy, detect, serve, after;
  int lost = 0;
  {
    // (a) in a pool of 2 workers with no-ops queued around the crash.
    procpool::ProcessPool pool({.workers = 2});
    pool.submit(noop).get();
    for (int i = 0; i < c.crash_samples; ++i) {
      std::vector<procpool::Future<void>> around;
      for (int k = 0; k < 32; ++k) around.push_back(pool.submit(noop));
      auto t0 = Clock::now();
      auto crash = pool.submit(segfault);
      for (int k = 0; k < 32; ++k) around.push_back(pool.submit(noop));
      busy.push_back(micros(await_crash(crash) - t0));
      for (auto& f : around) {
        try {
          f.get();
        } catch (const std::exception&) {
          ++lost;
        }
      }
    }
  }
  {
    // (b) in a pool of 1 worker: the no-op behind the crash needs the replacement.
    procpool::ProcessPool pool({.workers = 1});
    pool.submit(noop).get();
    for (int i = 0; i < c.crash_samples; ++i) {
      auto t0 = Clock::now();
      auto crash = pool.submit(segfault);
      auto next = pool.submit(noop);
      auto t1 = await_crash(crash);
      try {
        next.get();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "the no-op behind the crash failed: %s\n", e.what());
        ++lost;
        continue;
      }
      auto t2 = Clock::now();
      detect.push_back(micros(t1 - t0));
      serve.push_back(micros(t2 - t0));
      after.push_back(micros(t2 - t1));
    }
  }
  return {bench::median(busy), bench::median(detect), bench::median(serve), bench::median(after), lost};
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  bool quick = false;
  int rounds = -1;
  if (auto exit_code = bench::parse_options(argc, argv, rounds, quick)) return *exit_code;
  if (quick) c = Config{1, 100, 500, 5000, 3, 1, 1};
  if (rounds > 0) c.rounds = rounds;

  Figure rt50{"1. no-op round trip p50", "us", {}, 10, true, 247};
  Figure rt99{"   no-op round trip p99", "us", {}, 0, true, 0};
  Figure tput{"2. no-op throughput (submit all)", "tasks/s", {}, 500000, false, 7800};
  Figure echo_t{"3. 1 MiB echo round trip", "us", {}, 0, true, 4000};
  Figure echo_bw{"   1 MiB echo (one direction)", "MB/s", {}, 2000, false, 262};
  Figure copy_t{"   memcpy 1 MiB (ceiling)", "us", {}, 0, true, 0};
  Figure copy_bw{"   memcpy 1 MiB (ceiling)", "MB/s", {}, 0, false, 0};
  Figure start{"4. start-up to first result", "us", {}, 2000, true, 0};
  Figure stop{"   destroy an idle pool", "us", {}, 0, true, 0};
  Figure busy{"5a. crash -> WorkerCrashed (2 busy)", "us", {}, 0, true, 0};
  Figure detect{"5a. crash -> WorkerCrashed (1 wkr)", "us", {}, 0, true, 0};
  Figure serve{"5b. crash submit -> next no-op done", "us", {}, 5000, true, 0};
  Figure after{"    WorkerCrashed -> next no-op done", "us", {}, 0, true, 0};
  int lost = 0;

  std::printf("procpool core bench: %d round(s)%s; %d round trips, %d throughput tasks, %d echoes, %d pools, %d "
              "crashes per round\n",
              c.rounds, quick ? " (--quick)" : "", c.round_trips, c.throughput_tasks, c.echo_calls, c.pool_samples,
              c.crash_samples);
  try {
    std::vector<char> payload(kMiB);
    for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 131);
    {
      procpool::ProcessPool pool({.workers = 2});
      for (int i = 0; i < c.warmup; ++i) pool.submit(noop).get();
      for (int i = 0; i < 3; ++i) pool.submit(echo, payload).get();
      for (int r = 0; r < c.rounds; ++r) {
        auto [p50, p99] = round_trip(pool, c);
        rt50.rounds.push_back(p50);
        rt99.rounds.push_back(p99);
        tput.rounds.push_back(throughput(pool, c));
        double us = echo_round_trip(pool, c, payload);
        echo_t.rounds.push_back(us);
        echo_bw.rounds.push_back(static_cast<double>(kMiB) / us);  // bytes/µs = MB/s
        double copy_us = memcpy_1mib(payload);
        copy_t.rounds.push_back(copy_us);
        copy_bw.rounds.push_back(static_cast<double>(kMiB) / copy_us);
        std::fprintf(stderr, "round %d/%d: latency, throughput, echo done\n", r + 1, c.rounds);
      }
    }
    // Pools below are started with no other pool (and its threads) alive.
    for (int r = 0; r < c.rounds; ++r) {
      auto [up, down] = pool_lifecycle(c);
      start.rounds.push_back(up);
      stop.rounds.push_back(down);
      CrashFigures cf = crash_cost(c);
      busy.rounds.push_back(cf.busy_detect_us);
      detect.rounds.push_back(cf.detect_us);
      serve.rounds.push_back(cf.serve_us);
      after.rounds.push_back(cf.serve_after_us);
      lost += cf.lost;
      std::fprintf(stderr, "round %d/%d: lifecycle, crash done\n", r + 1, c.rounds);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
    return 1;
  }

  bench::print_table({rt50, rt99, tput, echo_t, echo_bw, copy_t, copy_bw, start, stop, busy, detect, serve, after}, c.rounds);
  std::printf("1 MiB echo reaches %.1f%% of the memcpy ceiling; Python: p50 247 us, 7.8k tasks/s, 1 MiB echo 4.0 ms "
              "(262 MB/s), a crash breaks its pool.\n",
              100.0 * echo_bw.med() / copy_bw.med());
  if (lost) std::printf("WARNING: %d no-op(s) submitted beside a crash failed (expected none)\n", lost);
  return lost ? 1 : 0;
}
