// SPDX-License-Identifier: MIT
// What workers write to stdout and stderr: inherited, discarded, or
// captured line by line with the worker's pid and the function that wrote
// it, whole lines only, nothing lost at a crash.
#include <doctest/doctest.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "support/census.hpp"
#include "support/task_functions.hpp"

namespace {
using namespace std::chrono_literals;

// Prints `n` numbered lines to stdout and to stderr, and one line to each
// written in three pieces.
int print_lines(int n, std::string tag) {
  for (int i = 0; i < n; ++i) {
    std::printf("%s out %d\n", tag.c_str(), i);
    std::fprintf(stderr, "%s err %d\n", tag.c_str(), i);
  }
  std::printf("%s ", tag.c_str());
  std::fflush(stdout);
  std::printf("in three ");
  std::fflush(stdout);
  std::printf("pieces\n");
  return n;
}
PROCPOOL_REGISTER(print_lines);

int print_other(std::string text) {
  std::printf("%s\n", text.c_str());
  return 0;
}
PROCPOOL_REGISTER(print_other);

// Writes lines, then an unfinished one straight to the descriptor, then crashes.
__attribute__((no_sanitize("undefined"))) int print_then_crash(int n) {
  for (int i = 0; i < n; ++i) std::printf("step %d\n", i);
  const char unfinished[] = "about to crash";
  (void)!::write(1, unfinished, sizeof unfinished - 1);
  volatile int* p = nullptr;
  *p = 1;
  return 0;
}
PROCPOOL_REGISTER(print_then_crash);

int print_long_line(int bytes) {
  std::string line(static_cast<size_t>(bytes), 'x');
  std::printf("%s\n", line.c_str());
  return bytes;
}
PROCPOOL_REGISTER(print_long_line);

std::string where_stdout_goes() {
  char target[256] = {};
  ssize_t n = ::readlink("/proc/self/fd/1", target, sizeof target - 1);
  return n > 0 ? std::string(target, static_cast<size_t>(n)) : std::string("?");
}
PROCPOOL_REGISTER(where_stdout_goes);

struct Collected {
  std::mutex mutex;
  std::vector<procpool::OutputLine> lines;
  std::vector<procpool::OutputLine> snapshot() {
    std::lock_guard lock(mutex);
    return lines;
  }
  size_t size() {
    std::lock_guard lock(mutex);
    return lines.size();
  }
};

procpool::PoolOptions capturing(Collected& into, size_t workers = 1) {
  procpool::PoolOptions options;
  options.workers = workers;
  options.worker_output = procpool::WorkerOutput::capture;
  options.on_output = [&into](const procpool::OutputLine& line) {
    std::lock_guard lock(into.mutex);
    into.lines.push_back(line);
  };
  return options;
}

std::vector<std::string> texts(const std::vector<procpool::OutputLine>& lines, procpool::OutputStream stream) {
  std::vector<std::string> out;
  for (auto& l : lines)
    if (l.stream == stream) out.push_back(l.text);
  return out;
}

}  // namespace

TEST_CASE("WorkerOutput.CapturedLinesArriveWholeWithThePidAndTheFunction") {
  census::Snapshot before;
  Collected got;
  {
    procpool::ProcessPool pool(capturing(got));
    pid_t worker = pool.worker_pids().at(0);
    CHECK(pool.submit(print_lines, 3, std::string("a")).get() == 3);
    REQUIRE(census::eventually([&] { return got.size() == 7; }, 2000ms));
    auto lines = got.snapshot();
    for (auto& l : lines) {
      CHECK(l.pid == worker);
      CHECK(l.function == "print_lines");
    }
    CHECK(texts(lines, procpool::OutputStream::out) ==
          std::vector<std::string>{"a out 0", "a out 1", "a out 2", "a in three pieces"});
    CHECK(texts(lines, procpool::OutputStream::err) == std::vector<std::string>{"a err 0", "a err 1", "a err 2"});
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("WorkerOutput.EachLineIsNamedWithTheFunctionThatWroteIt") {
  Collected got;
  procpool::ProcessPool pool(capturing(got));
  pool.submit(print_other, std::string("first")).get();
  pool.submit(print_lines, 0, std::string("b")).get();
  pool.submit(print_other, std::string("third")).get();
  REQUIRE(census::eventually([&] { return got.size() == 3; }, 2000ms));
  auto lines = got.snapshot();
  CHECK(lines[0].text == "first");
  CHECK(lines[0].function == "print_other");
  CHECK(lines[1].text == "b in three pieces");
  CHECK(lines[1].function == "print_lines");
  CHECK(lines[2].text == "third");
  CHECK(lines[2].function == "print_other");
}

TEST_CASE("WorkerOutput.ACrashedWorkersLastLinesAreInItsWorkerCrashedAndNoneIsLost") {
  census::Snapshot before;
  Collected got;
  {
    procpool::ProcessPool pool(capturing(got));
    try {
      pool.submit(print_then_crash, 30).get();
      FAIL("the crash did not fail the call");
    } catch (const procpool::WorkerCrashed& e) {
      const auto& last = e.last_output();
      REQUIRE(last.size() == procpool::detail::kLastOutputLines);
      CHECK(last.front() == "step 11");
      CHECK(last[last.size() - 2] == "step 29");
      CHECK(last.back() == "about to crash");  // unfinished, but written
      CHECK(std::string(e.what()).find("\"about to crash\"") != std::string::npos);
    }
    // Every line reached on_output before the call failed.
    auto lines = got.snapshot();
    REQUIRE(lines.size() == 31);
    CHECK(lines[0].text == "step 0");
    CHECK(lines[30].function == "print_then_crash");
    CHECK(pool.submit(print_other, std::string("replacement")).get() == 0);
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("WorkerOutput.ALineLongerThanTheLimitComesInPieces") {
  Collected got;
  procpool::ProcessPool pool(capturing(got));
  size_t limit = procpool::detail::kMaxOutputLine;
  pool.submit(print_long_line, static_cast<int>(2 * limit + 10)).get();
  REQUIRE(census::eventually([&] { return got.size() == 3; }, 2000ms));
  auto lines = got.snapshot();
  CHECK(lines[0].text.size() == limit);
  CHECK(lines[1].text.size() == limit);
  CHECK(lines[2].text.size() == 10);
}

TEST_CASE("WorkerOutput.DiscardPointsItAtDevNullAndInheritIsTheDefault") {
  {
    procpool::PoolOptions options;
    options.workers = 1;
    options.worker_output = procpool::WorkerOutput::discard;
    procpool::ProcessPool pool(options);
    CHECK(pool.submit(where_stdout_goes).get() == "/dev/null");
  }
  procpool::ProcessPool pool;
  CHECK(pool.submit(where_stdout_goes).get() == where_stdout_goes());
}

TEST_CASE("WorkerOutput.WithoutACallbackLinesGoToTheHostsStreamPrefixed") {
  pid_t worker = 0;
  std::string text = census::output_of(1, [&] {
    procpool::PoolOptions options;
    options.workers = 1;
    options.worker_output = procpool::WorkerOutput::capture;
    procpool::ProcessPool pool(options);
    worker = pool.worker_pids().at(0);
    pool.submit(print_other, std::string("to the host")).get();
  });  // shutdown reads the pipes to their end
  CHECK(text == "[worker " + std::to_string(worker) + " print_other] to the host\n");
}

TEST_CASE("WorkerOutput.AnOnOutputThatThrowsIsReportedAndTheLinesAfterItStillArrive") {
  Collected got;
  procpool::PoolOptions options = capturing(got);
  options.on_output = [collect = options.on_output](const procpool::OutputLine& line) {
    if (line.text == "first") throw std::runtime_error("on_output fails");
    if (line.text == "second") throw 7;
    collect(line);
  };
  std::string report = census::stderr_of([&] {
    procpool::ProcessPool pool(options);
    for (const char* text : {"first", "second", "third"}) pool.submit(print_other, std::string(text)).get();
  });  // shutdown delivers every line
  CHECK(texts(got.snapshot(), procpool::OutputStream::out) == std::vector<std::string>{"third"});
  CHECK(report.find("procpool: on_output threw: on_output fails\n") != std::string::npos);
  CHECK(report.find("procpool: on_output threw a non-standard exception\n") != std::string::npos);
}
