// SPDX-License-Identifier: MIT
// A tour of the asyncio vocabulary on procpool: as_completed, wait_for of a
// slow call, create_task + cancel, and the loop's default thread executor.
#include <procpool/procpool.hpp>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>

using namespace std::chrono_literals;

int slow_square(int n, int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return n * n;
}
PROCPOOL_REGISTER(slow_square);

namespace {

// A blocking call that needs no isolation: the default executor's kind.
std::string blocking_io() {
  std::this_thread::sleep_for(20ms);
  return "read 42 bytes";
}

procpool::Task<int> long_job(procpool::EventLoop& loop, procpool::ProcessPool& pool) {
  co_await procpool::sleep(10s);
  co_return co_await loop.run_in_executor(pool, slow_square, 6, 0);
}

procpool::Task<void> tour(procpool::EventLoop& loop) {
  procpool::ProcessPool pool({.workers = 3});

  // as_completed: results in the order the calls finish, not the order made.
  procpool::as_completed completed(std::vector{loop.run_in_executor(pool, slow_square, 3, 300),
                                               loop.run_in_executor(pool, slow_square, 1, 10),
                                               loop.run_in_executor(pool, slow_square, 2, 150)});
  std::cout << "as_completed:";
  while (!completed.empty()) std::cout << ' ' << (co_await completed.next()).get();
  std::cout << '\n';

  // wait_for: a call that takes 2 s, given 100 ms.
  try {
    co_await procpool::wait_for(loop.run_in_executor(pool, slow_square, 5, 2000), 100ms);
    std::cout << "wait_for: finished in time\n";
  } catch (const procpool::TaskTimeout&) {
    std::cout << "wait_for: timed out (TaskTimeout)\n";
  }

  // create_task + cancel: the task sees TaskCancelled where it is suspended.
  auto job = loop.create_task(long_job(loop, pool));
  co_await procpool::sleep(50ms);
  job.cancel();
  try {
    co_await job;
    std::cout << "create_task + cancel: the job finished\n";
  } catch (const procpool::TaskCancelled&) {
    std::cout << "create_task + cancel: cancelled at its await point (TaskCancelled)\n";
  }

  // The default executor (asyncio's run_in_executor(None, ...)): threads.
  std::string io = co_await loop.run_in_executor(nullptr, blocking_io);
  std::cout << "default executor: blocking_io() returned \"" << io << "\" on a thread of the loop's ThreadPool\n";
}

}  // namespace

int main(int argc, char** argv) {
  procpool::init(argc, argv);  // first: the forkserver's zygote is a copy of this moment
  if (argc > 1) {
    std::cout << "Usage: " << argv[0] << "\nRuns a short tour of procpool's asyncio-style helpers.\n";
    return std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help" ? 0 : 2;
  }
  try {
    procpool::EventLoop loop;
    loop.run_until_complete(tour(loop));
  } catch (const std::exception& e) {
    std::cerr << argv[0] << ": " << e.what() << '\n';
    return 1;
  }
  return 0;
}
