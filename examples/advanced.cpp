// SPDX-License-Identifier: MIT
// Port of Python's advanced loop.run_in_executor example: five CPU-bound
// calls run concurrently in worker processes and are gathered; one unlucky
// draw makes the whole gather fail with the task's exception.
//
// Reproducible runs (the host draws the numbers, so the seed decides them):
//   --seed 1  draws 6 10 5 9 4 (no 7) -> "The lucky numbers are [2999997000000, ...]"
//   --seed 3  draws 7 9 8 8 1         -> "An exception occurred: Unlucky number!"
//
// With --mpi (a build with MPI), the same calls run on the agents of an MPI
// job, the pool an MpiPool, and the output is the same:
//   mpirun -np 3 build/examples/advanced --mpi --seed 1
#include <procpool/procpool.hpp>
#ifdef PROCPOOL_EXAMPLE_MPI
#include <procpool/mpi/mpi.hpp>
#endif

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

long lucky_number(int n) {
  if (n == 7) throw std::invalid_argument("Unlucky number!");
  long sum = 0;
  for (long i = 0; i < 1'000'000; ++i) {
    sum += i * n;
    asm volatile("" : "+r"(sum));  // keep the compiler from folding the loop
  }
  return sum;
}
PROCPOOL_REGISTER(lucky_number);

namespace {

// A number in [1, 10], uniform. Done by hand rather than with
// std::uniform_int_distribution, whose output differs between standard
// libraries, so that a seed means the same draws everywhere.
int draw_1_to_10(std::mt19937& rng) {
  constexpr uint32_t limit = 4294967290u;  // the largest multiple of 10 <= 2^32
  uint32_t v;
  do v = static_cast<uint32_t>(rng());
  while (v >= limit);
  return 1 + static_cast<int>(v % 10);
}

void usage(std::ostream& out, const char* prog) {
  out << "Usage: " << prog << " [--seed N] [--workers N]\n"
      << "Draws five numbers in 1..10 and runs lucky_number(n) on each concurrently in\n"
      << "procpool worker processes; n == 7 throws \"Unlucky number!\".\n\n"
      << "  --seed N     seed the random draws with N (0..4294967295) for a reproducible\n"
      << "               run (default: std::random_device)\n"
      << "  --workers N  worker processes (default 0: one per CPU; with --mpi, the agents\n"
      << "               use their node's cores)\n"
#ifdef PROCPOOL_EXAMPLE_MPI
      << "  --mpi        run the calls on the agents of an MPI job (mpirun -np 3 ...)\n"
#endif
      << "  -h, --help   show this help\n";
}

bool parse_unsigned(const char* text, unsigned long long max, unsigned long long& out) {
  if (*text < '0' || *text > '9') return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtoull(text, &end, 10);
  return *end == '\0' && errno == 0 && out <= max;
}

// Python's list format: [1, 2, 3].
std::string python_list(const std::vector<long>& values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) out += (i ? ", " : "") + std::to_string(values[i]);
  return out + "]";
}

// async def main(): the article's coroutine, line for line, on either
// pool (a ProcessPool, or with --mpi an MpiPool).
template <class Pool>
procpool::Task<void> async_main(procpool::EventLoop& loop, uint32_t seed, Pool& pool) {
  std::mt19937 rng(seed);
  std::vector<procpool::Future<long>> tasks;
  for (int k = 0; k < 5; ++k) tasks.push_back(loop.run_in_executor(pool, lucky_number, draw_1_to_10(rng)));
  try {
    std::vector<long> results = co_await procpool::gather(std::move(tasks));
    std::cout << "The lucky numbers are " << python_list(results) << '\n';
  } catch (const std::invalid_argument& e) {
    std::cout << "An exception occurred: " << e.what() << '\n';
  }
}

// with ProcessPoolExecutor() as pool: the pool lives for the calls, and
// the time counts its start and its shutdown.
template <class Pool, class... PoolArgs>
void run_timed(uint32_t seed, PoolArgs&&... pool_args) {
  procpool::EventLoop loop;
  double start = loop.time();
  {
    Pool pool(std::forward<PoolArgs>(pool_args)...);
    loop.run_until_complete(async_main(loop, seed, pool));
  }
  double end = loop.time();
  std::printf("Total execution time: %.2f second(s)\n", end - start);
}

}  // namespace

int main(int argc, char** argv) {
  bool mpi = false;
  for (int i = 1; i < argc; ++i) mpi = mpi || std::string(argv[i]) == "--mpi";
#ifdef PROCPOOL_EXAMPLE_MPI
  // First, on every rank: only rank 0 returns; the others serve calls
  // until it ends.
  if (mpi) procpool::mpi::init(argc, argv);
#endif
  if (!mpi) procpool::init(argc, argv);  // first: the forkserver's zygote is a copy of this moment
  unsigned long long seed = std::random_device{}();
  unsigned long long workers = 0;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--mpi") continue;
    if (arg == "-h" || arg == "--help") {
      usage(std::cout, argv[0]);
      return 0;
    }
    unsigned long long* target = arg == "--seed" ? &seed : arg == "--workers" ? &workers : nullptr;
    if (!target) {
      std::cerr << argv[0] << ": unknown option '" << arg << "' (try --help)\n";
      return 2;
    }
    unsigned long long max = target == &seed ? UINT32_MAX : 1024;
    if (i + 1 >= argc || !parse_unsigned(argv[++i], max, *target)) {
      std::cerr << argv[0] << ": " << arg << " needs an integer in 0.." << max << " (try --help)\n";
      return 2;
    }
  }

#ifndef PROCPOOL_EXAMPLE_MPI
  if (mpi) {
    std::cerr << argv[0] << ": --mpi needs a build with MPI (PROCPOOL_WITH_MPI)\n";
    return 2;
  }
#endif
  try {
#ifdef PROCPOOL_EXAMPLE_MPI
    if (mpi) run_timed<procpool::mpi::MpiPool>(static_cast<uint32_t>(seed));
#endif
    if (!mpi) run_timed<procpool::ProcessPool>(static_cast<uint32_t>(seed), procpool::PoolOptions{.workers = workers});
  } catch (const std::exception& e) {
    std::cerr << argv[0] << ": " << e.what() << '\n';
    return 1;
  }
  return 0;
}
