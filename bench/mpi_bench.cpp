// SPDX-License-Identifier: MIT
// MpiPool beside ProcessPool on one machine, in one run:
//   mpirun --oversubscribe -np 3 build/bench/procpool_mpi_bench [--quick]
// Rank 0 measures; ranks 1 and 2 are agents with a local pool each. The
// ProcessPool is made on rank 0 with StartMethod::forkserver (its workers
// are clones of the zygote procpool::mpi::init forked before MPI started).
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <procpool/mpi/mpi.hpp>

#include "bench_util.hpp"

namespace {

void nothing() {}
void nothing_with(int) {}
std::vector<char> echo(std::vector<char> bytes) { return bytes; }
long spin(int n) {
  long sum = 0;
  for (long i = 0; i < 20'000'000; ++i) {
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
  {
    auto t0 = Clock::now();
    std::vector<procpool::Future<long>> futures;
    for (int i = 0; i < 8; ++i) futures.push_back(pool.submit(spin, i));
    for (auto& fu : futures) fu.get();
    f.spin_8_s = bench::millis(Clock::now() - t0) / 1e3;
  }
  return f;
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
  std::printf("| figure | MpiPool (%zu agents, %zu workers) | ProcessPool (%zu workers) |\n",
              procpool::mpi::agents().size(), agents_workers, agents_workers);
  std::printf("|---|---|---|\n");
  std::printf("| awaited no-op round trip, p50 | %s µs | %s µs |\n", bench::fmt(remote.round_trip_p50_us).c_str(),
              bench::fmt(local.round_trip_p50_us).c_str());
  std::printf("| no-op calls, submitted then awaited | %s calls/s | %s calls/s |\n",
              bench::fmt(remote.calls_per_s).c_str(), bench::fmt(local.calls_per_s).c_str());
  std::printf("| no-op calls through map | %s calls/s | %s calls/s |\n", bench::fmt(remote.map_calls_per_s).c_str(),
              bench::fmt(local.map_calls_per_s).c_str());
  std::printf("| 1 MiB echo, p50 | %s ms | %s ms |\n", bench::fmt(remote.echo_1mib_ms).c_str(),
              bench::fmt(local.echo_1mib_ms).c_str());
  std::printf("| 64 MiB echo, p50 | %s ms | %s ms |\n", bench::fmt(remote.echo_64mib_ms).c_str(),
              bench::fmt(local.echo_64mib_ms).c_str());
  std::printf("| 8 CPU-bound calls of one 20M-step loop | %s s | %s s |\n", bench::fmt(remote.spin_8_s).c_str(),
              bench::fmt(local.spin_8_s).c_str());
  procpool::mpi::finalize();
  return 0;
}
