// SPDX-License-Identifier: MIT
// MpiPool beside ProcessPool and Python's executors on one machine, in one
// run:
//   mpirun --oversubscribe -np 3 build/bench/procpool_mpi_bench [--quick]
// Rank 0 measures; ranks 1 and 2 are agents with a local pool each. The
// ProcessPool is made on rank 0 with StartMethod::forkserver (its workers
// are clones of the zygote procpool::mpi::init forked before MPI started).
// Python's ProcessPoolExecutor and loky (when a Python 3 is found) are run
// by the suite's own bench/python/executor_bench.py, through the suite's
// driver (bench/suite/driver.hpp), with as many workers as the agents have,
// limited to the figures of this table.
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <procpool/mpi/mpi.hpp>

#include "bench_util.hpp"
#include "suite/driver.hpp"

namespace {

void nothing() {}
void nothing_with(int) {}
std::vector<char> echo(std::vector<char> bytes) { return bytes; }
long spin(int n, long steps) {
  long sum = 0;
  for (long i = 0; i < steps; ++i) {
    sum += i * n;
    asm volatile("" : "+r"(sum));
  }
  return sum;
}

}  // namespace
PROCPOOL_REGISTER(nothing);
PROCPOOL_REGISTER(nothing_with);
PROCPOOL_REGISTER(echo);
PROCPOOL_REGISTER(spin);

namespace {

struct Figures {
  double round_trip_p50_us = 0;
  double calls_per_s = 0;
  double map_calls_per_s = 0;
  double echo_1mib_ms = 0;
  double echo_64mib_ms = 0;
  double spin_8_s = 0;
  double speedup = 0;  // 8 CPU-bound calls: one after another, over all at once
};

template <class Pool>
Figures measure(Pool& pool, bool quick) {
  using bench::Clock;
  Figures f;
  std::vector<double> trips;
  int n = quick ? 200 : 2000;
  for (int i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    pool.submit(nothing).get();
    trips.push_back(bench::micros(Clock::now() - t0));
  }
  f.round_trip_p50_us = bench::median(trips);

  int calls = quick ? 10'000 : 100'000;
  {
    std::vector<procpool::Future<void>> futures;
    futures.reserve(static_cast<size_t>(calls));
    auto t0 = Clock::now();
    for (int i = 0; i < calls; ++i) futures.push_back(pool.submit(nothing));
    for (auto& fu : futures) fu.get();
    f.calls_per_s = calls / (bench::millis(Clock::now() - t0) / 1e3);
  }
  {
    std::vector<int> inputs(static_cast<size_t>(calls), 1);
    auto t0 = Clock::now();
    pool.map(nothing_with, inputs).get();
    f.map_calls_per_s = calls / (bench::millis(Clock::now() - t0) / 1e3);
  }
  auto echo_ms = [&](size_t bytes, int rounds) {
    std::vector<char> payload(bytes, 'x');
    std::vector<double> ms;
    for (int r = 0; r < rounds; ++r) {
      auto t0 = Clock::now();
      auto back = pool.submit(echo, payload).get();
      ms.push_back(bench::millis(Clock::now() - t0));
      if (back.size() != bytes) std::fprintf(stderr, "echo came back short\n");
    }
    return bench::median(ms);
  };
  f.echo_1mib_ms = echo_ms(size_t{1} << 20, quick ? 5 : 20);
  f.echo_64mib_ms = echo_ms(size_t{64} << 20, quick ? 1 : 3);
  auto spin_8 = [&](long steps) {
    auto t0 = Clock::now();
    std::vector<procpool::Future<long>> futures;
    for (int i = 0; i < 8; ++i) futures.push_back(pool.submit(spin, i, steps));
    for (auto& fu : futures) fu.get();
    return bench::millis(Clock::now() - t0) / 1e3;
  };
  f.spin_8_s = spin_8(20'000'000);
  {
    // Calls long enough (some 50 ms; 15 quick) that a round trip is small
    // beside one: 8 one after another (one worker busy at a time), then
    // all at once.
    long steps = quick ? 50'000'000 : 200'000'000;
    auto t0 = Clock::now();
    for (int i = 0; i < 8; ++i) pool.submit(spin, i, steps).get();
    double one_by_one_s = bench::millis(Clock::now() - t0) / 1e3;
    f.speedup = one_by_one_s / spin_8(steps);
  }
  return f;
}

// Python's executors for one round, `workers` each, through the suite's
// driver: the records they printed (empty when no Python 3 was found).
bench::SuiteResults measure_python(bool quick, size_t workers) {
  bench::SuiteResults results;
  bench::SuiteOptions options;
  options.quick = quick;
  options.python = bench::find_python();
  options.python_dir = PROCPOOL_BENCH_PYTHON_DIR;
  if (options.python.empty()) return results;
  for (const char* system : {"python-ppe", "python-loky"})
    bench::run_measuring_program(system,
                                 bench::executor_bench_command(options, system, 1) + " --workers " +
                                     std::to_string(workers) +
                                     " --figures rtt,throughput,throughput_map,payload,scaling",
                                 results);
  for (const std::string& failure : results.failures) std::fprintf(stderr, "mpi_bench: %s\n", failure.c_str());
  return results;
}

// The value a Python system recorded for figure/param. With `any_count`
// (param is a call count, which a quick round makes smaller), else the
// first it recorded for that figure.
std::optional<double> python_value(const bench::SuiteResults& results, const std::string& system,
                                   const std::string& figure, const std::string& param, bool any_count) {
  std::optional<double> first;
  for (const bench::Record& r : results.records) {
    if (r.system != system || r.figure != figure) continue;
    if (r.param == param) return r.value;
    if (!first && any_count) first = r.value;
  }
  return first;
}

std::string cell(std::optional<double> v, double scale, const char* unit) {
  return v ? bench::fmt(*v * scale) + " " + unit : std::string("—");
}

}  // namespace

int main(int argc, char** argv) {
  procpool::mpi::init(argc, argv);
  bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  Figures remote, local;
  size_t agents_workers = 0;
  {
    procpool::mpi::MpiPool pool;
    agents_workers = pool.worker_count();
    remote = measure(pool, quick);
  }
  {
    procpool::ProcessPool pool({.workers = agents_workers, .start_method = procpool::StartMethod::forkserver});
    local = measure(pool, quick);
  }
  bench::SuiteResults python = measure_python(quick, agents_workers);
  // Python's throughput figures are named by their call counts.
  std::string calls = std::to_string(quick ? 10'000 : 100'000);
  auto py = [&](const char* system, const char* figure, const std::string& param, double scale, const char* unit) {
    return cell(python_value(python, system, figure, param, param == calls), scale, unit);
  };
  std::printf(
      "| figure | MpiPool (%zu agents, %zu workers) | ProcessPool (%zu workers) | Python "
      "ProcessPoolExecutor (%zu) | loky (%zu) |\n",
      procpool::mpi::agents().size(), agents_workers, agents_workers, agents_workers, agents_workers);
  std::printf("|---|---|---|---|---|\n");
  auto row = [&](const char* label, double mpi, double local, const char* unit, const char* figure,
                 const std::string& param, double scale) {
    std::printf("| %s | %s %s | %s %s | %s | %s |\n", label, bench::fmt(mpi).c_str(), unit, bench::fmt(local).c_str(),
                unit, py("python-ppe", figure, param, scale, unit).c_str(),
                py("python-loky", figure, param, scale, unit).c_str());
  };
  row("awaited no-op round trip, p50", remote.round_trip_p50_us, local.round_trip_p50_us, "µs", "rtt", "p50", 1);
  row("no-op calls, submitted then awaited", remote.calls_per_s, local.calls_per_s, "calls/s", "throughput", calls, 1);
  row("no-op calls through map", remote.map_calls_per_s, local.map_calls_per_s, "calls/s", "throughput_map", calls, 1);
  row("1 MiB echo, p50", remote.echo_1mib_ms, local.echo_1mib_ms, "ms", "payload_rtt", "1048576", 1e-3);
  row("64 MiB echo, p50", remote.echo_64mib_ms, local.echo_64mib_ms, "ms", "payload_rtt", "67108864", 1e-3);
  std::printf("| 8 CPU-bound calls of one 20M-step loop | %s s | %s s | — | — |\n", bench::fmt(remote.spin_8_s).c_str(),
              bench::fmt(local.spin_8_s).c_str());
  row("CPU-bound speed-up, all workers over one", remote.speedup, local.speedup, "×", "speedup",
      std::to_string(agents_workers), 1);
  for (const auto& [system, reason] : python.skipped) std::printf("(%s: %s)\n", system.c_str(), reason.c_str());
  if (python.records.empty()) std::printf("(Python's executors: no Python 3 found)\n");
  else
    std::printf(
        "(Python: executor_bench.py, one round; its calls run through asyncio's run_in_executor, its map "
        "with chunksize 256, its CPU-bound calls are pure-Python loops)\n");
  procpool::mpi::finalize();
  return 0;
}
