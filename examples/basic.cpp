// SPDX-License-Identifier: MIT
// Port of Python's basic loop.run_in_executor example: a blocking function
// runs in a worker process while the host waits for its result.
#include <procpool/procpool.hpp>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <string>
#include <thread>

std::string blocking_func(double seconds) {
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  return "This is the result of the blocking function.";
}
PROCPOOL_REGISTER(blocking_func);

namespace {

// The local time as HH:MM:SS, like Python's time.strftime('%X').
std::string now_hms() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  return buf;
}

void usage(std::ostream& out, const char* prog) {
  out << "Usage: " << prog << " [--sleep SECONDS]\n"
      << "Runs a blocking function in a procpool worker process and prints its result.\n\n"
      << "  --sleep SECONDS  how long the blocking function sleeps (default 5)\n"
      << "  -h, --help       show this help\n";
}

// async def main(): the article's coroutine, line for line.
procpool::Task<void> async_main(procpool::EventLoop& loop, double seconds) {
  std::cout << "Started at " << now_hms() << std::endl;
  std::string result;
  {
    procpool::ProcessPool pool({.workers = 1});  // with ProcessPoolExecutor() as pool:
    result = co_await loop.run_in_executor(pool, blocking_func, seconds);
  }
  std::cout << result << std::endl;
  std::cout << "Finished at " << now_hms() << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  procpool::init(argc, argv);  // first: the forkserver's zygote is a copy of this moment
  double seconds = 5.0;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      usage(std::cout, argv[0]);
      return 0;
    }
    if (arg == "--sleep" && i + 1 < argc) {
      char* end = nullptr;
      seconds = std::strtod(argv[++i], &end);
      if (*argv[i] == '\0' || *end != '\0' || !std::isfinite(seconds) || seconds < 0) {
        std::cerr << argv[0] << ": --sleep needs a non-negative number of seconds, got '" << argv[i] << "'\n";
        return 2;
      }
      continue;
    }
    std::cerr << argv[0] << ": " << (arg == "--sleep" ? "--sleep needs a value" : "unknown option '" + arg + "'")
              << " (try --help)\n";
    return 2;
  }

  try {
    procpool::EventLoop loop;
    loop.run_until_complete(async_main(loop, seconds));
  } catch (const std::exception& e) {
    std::cerr << argv[0] << ": " << e.what() << '\n';
    return 1;
  }
  return 0;
}
