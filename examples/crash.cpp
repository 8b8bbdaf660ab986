// SPDX-License-Identifier: MIT
// A task that crashes its worker fails alone: the tasks beside it still get
// their results, the pool forks a replacement worker and keeps serving.
#include <procpool/procpool.hpp>

#include <algorithm>
#include <csignal>
#include <iostream>
#include <string>
#include <vector>

int square(int n) { return n * n; }
PROCPOOL_REGISTER(square);

// no_sanitize: in a -fsanitize=undefined build the store must still fault.
__attribute__((no_sanitize("undefined"))) int segfault(int n) {
  // Both volatile: the compiler can neither see that p is null nor drop the
  // store (with only `int* volatile p`, g++ -O2 deletes the write).
  volatile int* volatile p = nullptr;
  *p = n;
  return n;
}
PROCPOOL_REGISTER(segfault);

namespace {

void usage(std::ostream& out, const char* prog) {
  out << "Usage: " << prog << " [--backtrace]\n"
      << "Runs healthy tasks beside one that segfaults in a pool of 2 workers, prints\n"
      << "each task's outcome, then shows the pool still serves.\n\n"
      << "  --backtrace  also print the crashed worker's backtrace\n"
      << "  -h, --help   show this help\n";
}

// Waits for every future in order and prints its outcome; returns the pids
// of the workers that crashed.
std::vector<pid_t> report(std::vector<procpool::Future<int>>& futures, int first_id, bool backtrace) {
  std::vector<pid_t> crashed;
  for (size_t k = 0; k < futures.size(); ++k) {
    std::cout << "task " << first_id + static_cast<int>(k) << ": ";
    try {
      int value = futures[k].get();
      std::cout << "result " << value << '\n';
    } catch (const procpool::WorkerCrashed& e) {
      std::cout << "crashed: " << e.what() << '\n';
      if (e.signal() == SIGSEGV) crashed.push_back(e.pid());
      if (backtrace) std::cout << "worker backtrace:\n" << e.backtrace() << '\n';
    } catch (const std::exception& e) {
      std::cout << "failed: " << e.what() << '\n';
    }
  }
  return crashed;
}

}  // namespace

int main(int argc, char** argv) {
  procpool::init(argc, argv);  // first: the forkserver's zygote is a copy of this moment
  bool backtrace = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      usage(std::cout, argv[0]);
      return 0;
    }
    if (arg != "--backtrace") {
      std::cerr << argv[0] << ": unknown option '" << arg << "' (try --help)\n";
      return 2;
    }
    backtrace = true;
  }

  try {
    procpool::ProcessPool pool({.workers = 2});
    std::vector<procpool::Future<int>> futures;
    for (int n = 1; n <= 5; ++n) futures.push_back(n == 3 ? pool.submit(segfault, n) : pool.submit(square, n));
    std::vector<pid_t> crashed = report(futures, 1, backtrace);

    // The dead worker is gone; the pool forks its replacement at once and
    // keeps its size.
    std::vector<pid_t> live = pool.worker_pids();
    bool replaced = !crashed.empty();
    for (pid_t pid : crashed) replaced = replaced && std::find(live.begin(), live.end(), pid) == live.end();
    std::cout << "after the crash: " << pool.worker_count()
              << " workers, crashed worker replaced: " << (replaced ? "yes" : "no") << '\n';
    futures.clear();
    for (int n = 6; n <= 9; ++n) futures.push_back(pool.submit(square, n));
    report(futures, 6, backtrace);
  } catch (const std::exception& e) {
    std::cerr << argv[0] << ": " << e.what() << '\n';
    return 1;
  }
  return 0;
}
