// SPDX-License-Identifier: MIT
// cancel() of calls an agent holds (protocol.hpp's Cancel frame): withdrawn
// from the agent's pool, or their worker stopped, as a local cancel() does;
// true exactly when the future fails with TaskCancelled at once.
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <cereal/types/string.hpp>

#include <procpool/mpi/mpi.hpp>

#include "support/task_functions.hpp"

using procpool::mpi::MpiPool;
using namespace std::chrono_literals;

namespace {

// Sleeps, then leaves a mark: a call stopped or never run leaves none.
int mpi_sleep_then_mark(std::string path, int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  if (std::FILE* f = std::fopen(path.c_str(), "w")) std::fclose(f);
  return ms;
}

std::string mark_path(const char* name) {
  std::string path = "/tmp/procpool_mpi_cancel_" + std::to_string(::getpid()) + "_" + name;
  std::remove(path.c_str());
  return path;
}
bool marked(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

size_t workers(MpiPool& pool) {
  size_t n = 0;
  for (auto& a : pool.agents()) n += a.workers;
  return n;
}

}  // namespace

PROCPOOL_REGISTER(mpi_sleep_then_mark);

TEST_CASE("MpiCancel.ACallQueuedOnAnAgentIsWithdrawnAndNeverRuns" * doctest::timeout(60)) {
  MpiPool pool;
  // Every worker busy; each agent then holds the next calls in its pool.
  std::vector<procpool::Future<double>> busy;
  for (size_t i = 0; i < workers(pool); ++i) busy.push_back(pool.submit(tasks::sleep_ms, 400));
  std::string path = mark_path("queued");
  auto queued = pool.submit(mpi_sleep_then_mark, path, 0);
  std::this_thread::sleep_for(100ms);  // sent to an agent by now (it has room)
  CHECK(queued.cancel());
  REQUIRE(queued.ready());
  CHECK(queued.cancelled());
  CHECK_THROWS_WITH_AS(queued.get(), doctest::Contains("while MPI rank"), procpool::TaskCancelled);
  CHECK(!queued.cancel());  // settled: nothing more to do
  for (auto& f : busy) CHECK(f.get() == 400);
  // Had the agent not withdrawn it, it would run right after a busy call.
  std::this_thread::sleep_for(500ms);
  CHECK(!marked(path));
  CHECK(pool.submit(tasks::add, 2, 3).get() == 5);
}

TEST_CASE("MpiCancel.ARunningCallOnAnAgentHasItsWorkerStopped" * doctest::timeout(60)) {
  MpiPool pool;
  std::string path = mark_path("running");
  auto running = pool.submit(mpi_sleep_then_mark, path, 1500);
  std::this_thread::sleep_for(300ms);  // its worker has begun it
  auto begun = std::chrono::steady_clock::now();
  CHECK(running.cancel());
  CHECK(std::chrono::steady_clock::now() - begun < 100ms);  // decided on the host, at once
  CHECK(running.cancelled());
  CHECK_THROWS_AS(running.get(), procpool::TaskCancelled);
  // Its worker was killed: the mark never comes; the agent goes on with a
  // new worker.
  std::this_thread::sleep_for(1700ms);
  CHECK(!marked(path));
  std::vector<procpool::Future<int>> after;
  for (int i = 0; i < 20; ++i) after.push_back(pool.submit(tasks::add, i, 1));
  for (int i = 0; i < 20; ++i) CHECK(after[static_cast<size_t>(i)].get() == i + 1);
}

TEST_CASE("MpiCancel.WithoutCancelRunningACallAnAgentHoldsRunsToItsEnd" * doctest::timeout(60)) {
  MpiPool pool;
  std::string path = mark_path("kept");
  auto kept = pool.submit_with({.cancel_running = false}, mpi_sleep_then_mark, path, 300);
  std::this_thread::sleep_for(100ms);
  CHECK(!kept.cancel());  // the host cannot know whether it has begun
  CHECK(kept.get() == 300);
  CHECK(!kept.cancelled());
  CHECK(marked(path));
  std::remove(path.c_str());
}

TEST_CASE("MpiCancel.CancelsRacingTheAnswersKeepTheirWord" * doctest::timeout(120)) {
  MpiPool pool;
  constexpr int kCalls = 3000;
  std::vector<procpool::Future<int>> futures;
  futures.reserve(kCalls);
  for (int i = 0; i < kCalls; ++i) futures.push_back(pool.submit(tasks::identity, i));
  // Cancelled from another thread, every other one, once the answers
  // have begun to come in: the first cancels find theirs taken, later ones
  // race them, the last ones overtake them.
  std::vector<char> said(kCalls, 0);
  std::thread canceller([&] {
    futures[kCalls / 4].wait();
    for (int i = 0; i < kCalls; i += 2) said[static_cast<size_t>(i)] = futures[static_cast<size_t>(i)].cancel();
  });
  canceller.join();
  int cancelled = 0, answered = 0, broken = 0;
  for (int i = 0; i < kCalls; ++i) {
    auto& f = futures[static_cast<size_t>(i)];
    if (said[static_cast<size_t>(i)]) {
      ++cancelled;
      broken += !f.ready() || !f.cancelled();
      CHECK_THROWS_AS(f.get(), procpool::TaskCancelled);
    } else {
      ++answered;
      broken += f.get() != i;  // false: the call's own result
      broken += f.cancelled();
    }
  }
  MESSAGE(cancelled << " cancelled, " << answered << " answered");
  CHECK(broken == 0);
  CHECK(cancelled > 0);
  CHECK(answered > kCalls / 2);
  // Every place an agent gave a cancelled call is free again.
  std::vector<procpool::Future<int>> after;
  for (int i = 0; i < 500; ++i) after.push_back(pool.submit(tasks::identity, i));
  for (int i = 0; i < 500; ++i) CHECK(after[static_cast<size_t>(i)].get() == i);
}
