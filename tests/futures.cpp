// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <procpool/loop/pool_core.hpp>

#include "support/census.hpp"
#include "support/task_functions.hpp"

namespace {

// The smallest coroutine type that can co_await a Future: runs eagerly and
// records what it got.
struct Detached {
  struct promise_type {
    Detached get_return_object() { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() {}
    void unhandled_exception() { std::terminate(); }
  };
};

Detached add_then_echo(procpool::ProcessPool& pool, std::atomic<int>& out, std::atomic<bool>& threw) {
  int sum = co_await pool.submit(tasks::add, 20, 22);
  std::string text = co_await pool.submit(tasks::echo, std::to_string(sum));
  out = std::stoi(text);
  try {
    co_await pool.submit(tasks::throw_kind, std::string("invalid_argument"));
  } catch (const std::invalid_argument&) {
    threw = true;
  }
}

// Which calls of mark_ran ran: shared memory mapped before any pool forks,
// so every worker writes into the test's own view.
constexpr int kMarks = 1 << 16;
std::atomic<int>* const g_ran = [] {
  void* p =
      ::mmap(nullptr, kMarks * sizeof(std::atomic<int>), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : static_cast<std::atomic<int>*>(p);
}();
int mark_ran(int id) {
  g_ran[id].fetch_add(1);
  return id;
}
PROCPOOL_REGISTER(mark_ran);

}  // namespace

TEST_CASE("Futures.ThenRunsOnceWithTheResult" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  std::atomic<int> calls{0}, value{0};
  auto f = pool.submit(tasks::sleep_ms, 50);
  f.then([&](procpool::Future<double> done) {
    value = static_cast<int>(done.get());
    ++calls;
  });
  CHECK(census::eventually([&] { return calls.load() == 1; }));
  CHECK(value == 50);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(calls == 1);
}

TEST_CASE("Futures.ThenOnAReadyFutureRunsAtOnce" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  auto f = pool.submit(tasks::add, 1, 2);
  f.wait();
  bool ran = false;
  f.then([&](procpool::Future<int> done) { ran = done.get() == 3; });
  CHECK(ran);
}

TEST_CASE("Futures.ThenSeesTheError" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  std::atomic<bool> saw{false};
  pool.submit(tasks::throw_kind, std::string("runtime_error")).then([&](procpool::Future<int> done) {
    try {
      done.get();
    } catch (const std::runtime_error& e) {
      saw = std::string(e.what()) == "runtime";
    }
  });
  CHECK(census::eventually([&] { return saw.load(); }));
}

TEST_CASE("Futures.ACallbackThatThrowsIsReportedAndTheCallbacksAfterItStillRun" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  std::atomic<bool> last_ran{false};
  std::string report = census::stderr_of([&] {
    auto f = pool.submit(tasks::sleep_ms, 500);  // not ready yet: its callbacks run on the pool's thread
    f.then([](procpool::Future<double>) { throw std::runtime_error("a failing callback"); });
    f.then([](procpool::Future<double>) { throw 7; });
    f.then([&](procpool::Future<double>) { last_ran = true; });
    census::eventually([&] { return last_ran.load(); });
  });
  CHECK(last_ran);
  CHECK(report.find("procpool: a Future callback threw std::runtime_error: a failing callback\n") != std::string::npos);
  CHECK(report.find("procpool: a Future callback threw a non-standard exception\n") != std::string::npos);
  CHECK(pool.submit(tasks::add, 2, 3).get() == 5);
}

TEST_CASE("Futures.ACallbackOnAReadyFutureThatThrowsIsReportedNotThrownAtItsCaller" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  auto f = pool.submit(tasks::add, 2, 3);
  f.wait();
  bool ran = false;
  std::string report = census::stderr_of([&] {
    CHECK_NOTHROW(f.then([&](procpool::Future<int>) {
      ran = true;  // at once, on this thread
      throw std::logic_error("a failing callback");
    }));
  });
  CHECK(ran);
  CHECK(report.find("procpool: a Future callback threw std::logic_error: a failing callback\n") != std::string::npos);
  CHECK(f.get() == 5);
}

TEST_CASE("Futures.WaitForTimesOutThenSucceeds" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  auto f = pool.submit(tasks::sleep_ms, 300);
  CHECK_FALSE(f.wait_for(std::chrono::milliseconds(20)));
  CHECK_FALSE(f.ready());
  CHECK(f.wait_for(std::chrono::seconds(10)));
  CHECK(f.ready());
  CHECK(f.get() == 300);
}

// The longest durations mean no limit (as PoolOptions::destructor_wait's
// milliseconds::max() does): they waited not at all when now + timeout
// overflowed the clock.
TEST_CASE("Futures.WaitForWithTheLongestDurationsWaitsUntilReady" * doctest::timeout(30)) {
  using namespace std::chrono;
  procpool::ProcessPool pool({.workers = 1});
  auto waits = [&](auto timeout) {
    auto f = pool.submit(tasks::sleep_ms, 50);
    auto t0 = steady_clock::now();
    bool ready = f.wait_for(timeout);
    return ready && f.ready() && steady_clock::now() - t0 >= 40ms;
  };
  CHECK(waits(hours::max()));
  CHECK(waits(milliseconds::max()));
  CHECK(waits(seconds::max()));
  CHECK(waits(hours(24 * 365 * 1000)));
  CHECK(waits(duration<double>(1e300)));
  // And the shortest: a look, not a wait.
  auto f = pool.submit(tasks::sleep_ms, 200);
  auto t0 = steady_clock::now();
  CHECK_FALSE(f.wait_for(hours::min()));
  CHECK_FALSE(f.wait_for(-5s));
  CHECK(steady_clock::now() - t0 < 100ms);
}

TEST_CASE("Futures.GetTwiceThrowsAsItMovesTheValueOut" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  auto f = pool.submit(tasks::add, 1, 1);
  CHECK(f.get() == 2);
  CHECK_THROWS_AS(f.get(), procpool::Error);
}

// As concurrent.futures' result(): read again, from any copy, in a
// callback and after it; get() alone moves the value out.
TEST_CASE("Futures.ResultCanBeReadAgainFromEveryCopyUntilGetMovesItOut" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  auto f = pool.submit(tasks::echo, std::string("kept"));
  std::atomic<bool> read_in_callback{false};
  f.then([&](procpool::Future<std::string> g) { read_in_callback = g.result() == "kept"; });
  CHECK(f.result() == "kept");
  const std::string& first = f.result();
  auto copy = f;
  CHECK(&copy.result() == &first);  // the same value, not a copy
  CHECK(census::eventually([&] { return read_in_callback.load(); }));
  CHECK(f.result() == "kept");
  CHECK(copy.get() == "kept");  // moved out
  CHECK_THROWS_WITH_AS(f.result(), doctest::Contains("Future::result(): the result was already taken by get()"),
                       procpool::Error);

  auto failing = pool.submit(tasks::throw_kind, std::string("out_of_range"));
  CHECK_THROWS_AS(failing.result(), std::out_of_range);
  CHECK_THROWS_AS(failing.result(), std::out_of_range);  // every time, as the error stays
  auto nothing = pool.submit(tasks::noop);
  nothing.result();
  nothing.result();
}

TEST_CASE("Futures.CoAwaitReturnsValuesAndRethrows" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 2});
  std::atomic<int> out{0};
  std::atomic<bool> threw{false};
  add_then_echo(pool, out, threw);
  CHECK(census::eventually([&] { return threw.load(); }));
  CHECK(out == 42);
}

TEST_CASE("Futures.NoSharedStateOutlivesItsFutures" * doctest::timeout(30)) {
  long before = procpool::detail::StateBase::live_count();
  {
    procpool::ProcessPool pool({.workers = 2});
    std::vector<procpool::Future<int>> fs;
    for (int i = 0; i < 1000; ++i) fs.push_back(pool.submit(tasks::identity, i));
    fs.push_back(pool.submit(tasks::crash, std::string("segv")));
    for (auto& f : fs) f.wait();
  }
  CHECK(procpool::detail::StateBase::live_count() == before);
}

TEST_CASE("Futures.DefaultConstructedFutureThrowsInsteadOfCrashing" * doctest::timeout(30)) {
  procpool::Future<int> f;
  CHECK_FALSE(f.valid());
  CHECK_THROWS_WITH_AS(f.ready(), doctest::Contains("no state"), procpool::Error);
  CHECK_THROWS_AS(f.get(), procpool::Error);
}

TEST_CASE("Futures.CallbacksRunOnThePoolThreadEvenWhenAWaiterSettles" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  std::atomic<bool> done{false};
  std::thread::id ran_on;
  auto f = pool.submit(tasks::add, 1, 2);
  f.then([&](procpool::Future<int>) {
    ran_on = std::this_thread::get_id();
    done = true;
  });
  f.wait();  // this thread polls the rings and may be the one that settles it
  CHECK(census::eventually([&] { return done.load(); }));
  CHECK(ran_on != std::this_thread::get_id());
}

TEST_CASE("Futures.BlockingGetInACallbackIsRefusedNotDeadlocked" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  std::atomic<bool> refused{false};
  pool.submit(tasks::add, 1, 2).then([&](procpool::Future<int>) {
    try {
      pool.submit(tasks::sleep_ms, 100).get();
    } catch (const procpool::Error& e) {
      refused = std::string(e.what()).find("would deadlock") != std::string::npos;
    }
  });
  CHECK(census::eventually([&] { return refused.load(); }));
  CHECK(pool.submit(tasks::add, 2, 2).get() == 4);
}

// A wait that cannot block (its timeout is zero) is a look, which cannot
// deadlock on the pool's own thread either: it says whether the call is
// ready; a wait that could block is still refused there.
TEST_CASE("Futures.AZeroWaitInACallbackLooksAndABlockingOneIsRefused" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 2});  // the callback's call ends while `slow` runs
  auto slow = pool.submit(tasks::sleep_ms, 300);
  std::atomic<int> looked{0}, refused{0};
  pool.submit(tasks::add, 1, 2).then([&](procpool::Future<int>) {
    try {
      looked = slow.wait_for(std::chrono::milliseconds(0)) ? 2 : 1;
    } catch (...) {
      looked = 3;
    }
    try {
      (void)slow.wait_for(std::chrono::milliseconds(1));
    } catch (const procpool::Error& e) {
      refused = std::string(e.what()).find("would deadlock") != std::string::npos ? 1 : 2;
    }
  });
  CHECK(census::eventually([&] { return looked != 0 && refused != 0; }));
  CHECK(looked == 1);  // not ready yet, and no exception
  CHECK(refused == 1);
  CHECK(slow.get() == 300);
}

// cancel() is true exactly when the future ends in TaskCancelled, and then
// the call never ran; false means the call's own result arrives.
TEST_CASE("Futures.CancelOfACallInAWorkersRingBehindARunningOneIsTrueAndItNeverRuns" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});  // calls go to the worker's ring at once
  std::string path = "/tmp/procpool-test-cancel-ring-" + std::to_string(getpid());
  std::remove(path.c_str());
  auto busy = pool.submit(tasks::sleep_ms, 300);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the worker has started it
  auto next = pool.submit(tasks::record_run, path, 1);         // right behind it
  auto later = pool.submit(tasks::record_run, path, 2);
  auto after = pool.submit(tasks::add, 2, 2);
  CHECK(later.cancel());
  CHECK(next.cancel());
  CHECK(next.cancelled());
  CHECK_THROWS_WITH_AS(later.get(), "the call was cancelled before it started", procpool::TaskCancelled);
  CHECK_FALSE(next.cancel());  // once is enough
  CHECK(busy.get() == 300);
  CHECK(after.get() == 4);
  CHECK_FALSE(std::ifstream(path).good());  // neither ran
  std::remove(path.c_str());
}

TEST_CASE("Futures.CancelOfACallHandedToAWorkerButNotYetInItsRingIsTrue" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1, .ring_bytes = 4096});
  std::string path = "/tmp/procpool-test-cancel-unsent-" + std::to_string(getpid());
  std::remove(path.c_str());
  auto busy = pool.submit(tasks::sleep_ms, 200);
  std::string big(1 << 16, 'b');
  auto streaming = pool.submit(tasks::echo, big);         // fills the ring; the rest waits for room
  auto unsent = pool.submit(tasks::record_run, path, 3);  // handed to the worker, not a byte in its ring
  CHECK(unsent.cancel());
  CHECK_THROWS_AS(unsent.get(), procpool::TaskCancelled);
  CHECK(streaming.get() == big);
  CHECK(pool.submit(tasks::add, 1, 1).get() == 2);
  CHECK_FALSE(std::ifstream(path).good());
  std::remove(path.c_str());
}

// With cancel_running, a running call cancelled is stopped with its worker:
// it may have run (once), and its future is TaskCancelled all the same.
TEST_CASE("Futures.CancelIsTrueExactlyWhenTheFutureEndsCancelledUnderLoad" * doctest::timeout(60)) {
  REQUIRE(g_ran != nullptr);
  bool cancel_running = false;
  SUBCASE("cancel_running = false") { cancel_running = false; }
  SUBCASE("cancel_running = true") { cancel_running = true; }
  CAPTURE(cancel_running);
  for (int k = 0; k < kMarks; ++k) g_ran[k].store(0);
  long states_before = procpool::detail::StateBase::live_count();
  int promised = 0, refused = 0;
  std::vector<bool> withdrawn(kMarks);
  {
    // g_ran is shared memory the workers inherit: not under spawn.
    procpool::ProcessPool pool(
        {.workers = 2, .start_method = census::inheriting_start_method(), .cancel_running = cancel_running});
    int id = 0;
    for (int round = 0; round < 300 && id + 64 <= kMarks; ++round) {
      std::vector<procpool::Future<int>> calls;
      for (int k = 0; k < 64; ++k) calls.push_back(pool.submit(mark_ran, id + k));
      // Cancelled from the back, while the workers run the front: every
      // place a call can be (queue, ring, running, answered).
      std::vector<bool> said(64);
      for (int k = 63; k >= 0; --k)
        if (k % 3 != 1) said[static_cast<size_t>(k)] = calls[static_cast<size_t>(k)].cancel();
      for (int k = 0; k < 64; ++k) {
        auto& f = calls[static_cast<size_t>(k)];
        if (said[static_cast<size_t>(k)]) {
          ++promised;
          withdrawn[static_cast<size_t>(id + k)] = true;
          CHECK(f.cancelled());
        } else {
          ++refused;
          CHECK(f.get() == id + k);
        }
      }
      id += 64;
    }
    CHECK(pool.submit(tasks::add, 1, 1).get() == 2);  // every earlier call is answered or skipped
    pool.shutdown(true);
    int wrong = 0;
    for (int k = 0; k < id; ++k) {
      int ran = g_ran[k].load();
      if (withdrawn[static_cast<size_t>(k)]) wrong += cancel_running ? ran > 1 : ran != 0;
      else wrong += ran != 1;
    }
    CHECK(wrong == 0);  // a withdrawn call never ran (or was stopped), every other ran once
  }
  MESSAGE("cancel() true " << promised << " times, false " << refused << " times");
  CHECK(promised > 0);
  CHECK(refused > 0);
  CHECK(procpool::detail::StateBase::live_count() == states_before);
}

// A withdrawal the worker races: the host cannot promise it, so cancel() is
// false, and the call's real result settles the future whether the worker
// ran the call (it began it before the entry) or skipped it (it saw the
// entry, after the host's check): then the host sends it again.
TEST_CASE("Futures.CancelThatLosesTheRaceToTheWorkerIsFalseAndTheResultArrives" * doctest::timeout(30)) {
  for (int step : {0, 1}) {
    CAPTURE(step);
    std::string path = "/tmp/procpool-test-cancel-race-" + std::to_string(getpid());
    std::remove(path.c_str());
    static int race_step;
    race_step = step;
    procpool::ProcessPool pool({.workers = 1});
    auto busy = pool.submit(tasks::sleep_ms, 30);
    REQUIRE(census::eventually([&] { return busy.running(); }));  // its answer is to come
    auto target = pool.submit(tasks::record_run, path, 5);
    // The worker answers `busy` and begins `target` while cancel() holds still.
    procpool::detail::withdrawal_race_for_tests = [](int at) {
      if (at == race_step) std::this_thread::sleep_for(std::chrono::milliseconds(150));
    };
    bool said = target.cancel();
    procpool::detail::withdrawal_race_for_tests = nullptr;
    CHECK_FALSE(said);
    CHECK(target.get() == 5);
    CHECK_FALSE(target.cancelled());
    CHECK(busy.get() == 30);
    std::ifstream runs(path);
    std::string line, all;
    while (std::getline(runs, line)) all += line + ";";
    CHECK(all == "5;");  // ran exactly once
    std::remove(path.c_str());
  }
}
