// SPDX-License-Identifier: MIT
// MpiPool under mpirun -np 3 (ctest): rank 0 runs these, ranks 1 and 2 are
// agents with local pools. tests/mpi/run_mpi_suite.sh checks afterwards
// that every rank exited 0 and left no process and no /dev/shm name.
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <procpool/mpi/mpi.hpp>

#include "support/task_functions.hpp"

namespace {
// The agent process that forked the worker running the call: a worker is
// the child of its agent's rank (StartMethod::forkserver clones it as one).
int agent_of_worker() { return static_cast<int>(getppid()); }
void ignore(int) {}
}  // namespace
PROCPOOL_REGISTER(agent_of_worker);
PROCPOOL_REGISTER(ignore);

using procpool::mpi::MpiPool;

TEST_CASE("MpiPool.TheJobHasTwoAgentsThatIntroducedThemselves" * doctest::timeout(60)) {
  auto agents = procpool::mpi::agents();
  REQUIRE(agents.size() == 2);
  CHECK(agents[0].rank == 1);
  CHECK(agents[1].rank == 2);
  for (auto& a : agents) {
    CHECK(a.workers >= 1);
    CHECK(a.pid > 0);
    CHECK(a.pid != getpid());
    CHECK(!a.host.empty());
  }
  CHECK(procpool::mpi::rank() == 0);
}

TEST_CASE("MpiPool.ATypedCallAndACallByNameGiveTheirResults" * doctest::timeout(60)) {
  MpiPool pool;
  auto sum = pool.submit(tasks::add, 2, 3);
  auto text = pool.call<std::string>("echo", std::string("over MPI"));
  auto nothing = pool.submit(tasks::noop);
  CHECK(sum.get() == 5);
  CHECK(text.get() == "over MPI");
  nothing.get();
  CHECK(pool.submit(tasks::split_words, std::string("a bc d")).get() == std::vector<std::string>{"a", "bc", "d"});
}

TEST_CASE("MpiPool.CallsRunOnTheAgentsNotOnTheHost" * doctest::timeout(60)) {
  MpiPool pool;
  std::set<int> agents;
  for (auto& a : procpool::mpi::agents()) agents.insert(a.pid);
  // Calls long enough that least-loaded dispatch gives both agents some.
  std::vector<procpool::Future<int>> parents;
  for (int i = 0; i < 8; ++i) parents.push_back(pool.submit(agent_of_worker));
  std::set<int> seen;
  for (auto& f : parents) seen.insert(f.get());
  for (int parent : seen) CHECK(agents.count(parent) == 1);
  std::vector<procpool::Future<double>> sleeps;
  for (int i = 0; i < 4; ++i) sleeps.push_back(pool.submit(tasks::sleep_ms, 100));
  std::vector<procpool::Future<int>> during;
  for (int i = 0; i < 2; ++i) during.push_back(pool.submit(agent_of_worker));
  for (auto& f : sleeps) f.get();
  for (auto& f : during) seen.insert(f.get());
  CHECK(seen == agents);
}

TEST_CASE("MpiPool.TheEventLoopGathersCallsAcrossTheAgents" * doctest::timeout(60)) {
  MpiPool pool;
  procpool::EventLoop loop;
  std::vector<int> sums = loop.run_until_complete([&]() -> procpool::Task<std::vector<int>> {
    std::vector<procpool::Future<int>> calls;
    for (int i = 0; i < 10; ++i) calls.push_back(loop.run_in_executor(pool, tasks::add, i, i));
    co_return co_await procpool::gather(std::move(calls));
  }());
  CHECK(sums == std::vector<int>{0, 2, 4, 6, 8, 10, 12, 14, 16, 18});
  int by_name = loop.run_until_complete(
      [&]() -> procpool::Task<int> { co_return co_await loop.run_in_executor<int>(pool, "add", 40, 2); }());
  CHECK(by_name == 42);
  bool raised = loop.run_until_complete([&]() -> procpool::Task<bool> {
    try {
      co_await loop.run_in_executor(pool, tasks::throw_kind, std::string("invalid_argument"));
    } catch (const std::invalid_argument&) {
      co_return true;
    }
    co_return false;
  }());
  CHECK(raised);
}

TEST_CASE("MpiPool.AnExceptionThrownOnAnAgentArrivesAsItsOwnType" * doctest::timeout(60)) {
  MpiPool pool;
  auto bad = pool.submit(tasks::throw_kind, std::string("invalid_argument"));
  auto range = pool.call<int>("throw_kind", std::string("out_of_range"));
  auto quota = pool.submit(tasks::throw_kind, std::string("quota"));
  auto system = pool.submit(tasks::throw_kind, std::string("system_error"));
  REQUIRE_THROWS_WITH_AS(bad.get(), "bad argument", std::invalid_argument);
  REQUIRE_THROWS_WITH_AS(range.get(), "index 9 out of range", std::out_of_range);
  try {
    quota.get();
    FAIL("the call did not throw");
  } catch (const tasks::QuotaExceeded& e) {  // a registered type, with its fields
    CHECK(std::string(e.what()) == "quota exceeded");
    CHECK(e.user == "alice");
    CHECK(e.used == 42);
  }
  try {
    system.get();
    FAIL("the call did not throw");
  } catch (const std::system_error& e) {
    CHECK(e.code() == std::error_code(ENOENT, std::generic_category()));
  }
  CHECK(pool.submit(tasks::add, 1, 1).get() == 2);  // the agents go on
}

TEST_CASE("MpiPool.ACrashOnAnAgentFailsOnlyItsCallAndNamesTheRankAndHost" * doctest::timeout(60)) {
  MpiPool pool;
  std::vector<procpool::Future<int>> before;
  for (int i = 0; i < 6; ++i) before.push_back(pool.submit(tasks::identity, i));
  auto crashed = pool.submit(tasks::crash, std::string("segv"));
  std::vector<procpool::Future<int>> after;
  for (int i = 0; i < 6; ++i) after.push_back(pool.submit(tasks::identity, 100 + i));
  try {
    crashed.get();
    FAIL("the call did not fail");
  } catch (const procpool::mpi::RemoteWorkerCrashed& e) {
    CHECK(e.signal() == SIGSEGV);
    CHECK(e.function() == "crash");
    CHECK((e.rank() == 1 || e.rank() == 2));
    std::string what = e.what();
    CHECK(what.find("SIGSEGV") != std::string::npos);
    CHECK(what.find("on MPI rank " + std::to_string(e.rank()) + " (host " + e.host() + ")") != std::string::npos);
    CHECK(e.host() == procpool::mpi::agents()[static_cast<size_t>(e.rank() - 1)].host);
  }
  for (int i = 0; i < 6; ++i) CHECK(before[static_cast<size_t>(i)].get() == i);
  for (int i = 0; i < 6; ++i) CHECK(after[static_cast<size_t>(i)].get() == 100 + i);
  // Caught as the WorkerCrashed a local pool gives, too.
  CHECK_THROWS_AS(pool.submit(tasks::crash, std::string("abort")).get(), procpool::WorkerCrashed);
}

TEST_CASE("MpiPool.ACallPastItsDeadlineFailsWithTaskTimeoutAndTheAgentGoesOn" * doctest::timeout(60)) {
  MpiPool pool;
  auto slow = pool.submit_with({.timeout = std::chrono::milliseconds(200)}, tasks::sleep_ms, 10'000);
  auto quick = pool.call_with<double>({.timeout = std::chrono::milliseconds(5000)}, "sleep_ms", 10);
  try {
    slow.get();
    FAIL("the call did not time out");
  } catch (const procpool::TaskTimeout& e) {  // the agent pool's verdict, as its own type
    CHECK(e.function() == "sleep_ms");
    CHECK(e.deadline() == std::chrono::milliseconds(200));
    CHECK(std::string(e.what()).find("deadline of 200 ms") != std::string::npos);
  }
  CHECK(quick.get() == 10);
  CHECK(pool.submit(tasks::add, 2, 2).get() == 4);
}

TEST_CASE("MpiPool.AMeasuredCallCarriesItsUsageBackFromTheAgent" * doctest::timeout(60)) {
  MpiPool pool;
  auto measured = pool.submit_with({.measure_usage = true}, tasks::sleep_ms, 30);
  auto plain = pool.submit(tasks::sleep_ms, 1);
  CHECK(measured.get() == 30);
  plain.get();
  REQUIRE(measured.usage().has_value());
  CHECK(measured.usage()->wall >= std::chrono::milliseconds(30));
  CHECK(measured.usage()->peak_rss_bytes > 0);
  CHECK(!plain.usage().has_value());
  // A measured call whose worker died has no usage, and its crash is intact.
  auto crashed = pool.submit_with({.measure_usage = true}, tasks::crash, std::string("abort"));
  CHECK_THROWS_AS(crashed.get(), procpool::mpi::RemoteWorkerCrashed);
  CHECK(!crashed.usage().has_value());
}

TEST_CASE("MpiPool.ManyCallsEachSettleWithTheirOwnResult" * doctest::timeout(120)) {
  MpiPool pool;
  constexpr int kCalls = 3000;
  std::vector<procpool::Future<int>> futures;
  futures.reserve(kCalls);
  for (int i = 0; i < kCalls; ++i) futures.push_back(pool.submit(tasks::identity, i));
  int wrong = 0;
  for (int i = 0; i < kCalls; ++i) wrong += futures[static_cast<size_t>(i)].get() != i;
  CHECK(wrong == 0);
}

TEST_CASE("MpiPool.CallsFromManyThreadsAllSettle" * doctest::timeout(120)) {
  MpiPool pool;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i)
        if (pool.submit(tasks::add, t, i).get() != t + i) ++wrong;
    });
  for (auto& th : threads) th.join();
  CHECK(wrong.load() == 0);
}

TEST_CASE("MpiPool.PayloadsLargerThanAChunkCrossWhole" * doctest::timeout(120)) {
  MpiPool pool;
  // Over 1 MiB (frame_channel.hpp's chunk) each way, not a multiple of it.
  std::string big(5 * 1024 * 1024 + 123, 'x');
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>('a' + (i / 4096) % 26);
  CHECK(pool.submit(tasks::echo, big).get() == big);
  CHECK(pool.submit(tasks::make_text, size_t{3} << 20).get() == std::string(size_t{3} << 20, 't'));
  std::vector<unsigned char> bytes(2 * 1024 * 1024);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<unsigned char>(i * 7);
  CHECK(pool.submit(tasks::echo_bytes, bytes).get() == bytes);
}

TEST_CASE("MpiPool.ABadCallFailsAtOnceOnTheHost" * doctest::timeout(60)) {
  MpiPool pool;
  CHECK_THROWS_AS(pool.call<int>("no_such_function", 1).get(), procpool::UnknownFunction);
  CHECK_THROWS_AS(pool.call<int>("add", 1.5, 2).get(), procpool::SerializationError);
}

TEST_CASE("MpiPool.ThenRunsOnceOnTheLinkThreadWhenTheAgentAnswers" * doctest::timeout(60)) {
  MpiPool pool;
  std::atomic<int> runs{0};
  std::atomic<int> value{0};
  std::atomic<bool> on_caller{true};
  auto caller = std::this_thread::get_id();
  auto f = pool.submit(tasks::add, 20, 22);
  f.then([&](procpool::Future<int> done) {
    value = done.get();
    on_caller = std::this_thread::get_id() == caller;
    ++runs;
  });
  f.wait();
  for (int i = 0; i < 1000 && runs.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(runs.load() == 1);
  CHECK(value.load() == 42);
  CHECK(!on_caller.load());
}

TEST_CASE("MpiPool.AShutDownPoolRefusesNewCallsAndFinishesThoseItTook" * doctest::timeout(60)) {
  MpiPool pool;
  auto slow = pool.submit(tasks::sleep_ms, 200);
  pool.shutdown();  // waits for it
  CHECK(slow.ready());
  CHECK(slow.get() == 200);
  CHECK_THROWS_AS(pool.submit(tasks::add, 1, 2).get(), procpool::PoolShutdown);
  MpiPool next;  // the agents serve the next pool
  CHECK(next.submit(tasks::add, 1, 2).get() == 3);
}

// Shared states alive, once the link thread has dropped its references:
// it does so just after settling each state, which may be after the get()
// that waited on it has returned.
long live_states_settled() {
  for (int i = 0; i < 1000 && procpool::detail::StateBase::live_count() != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return procpool::detail::StateBase::live_count();
}

TEST_CASE("MpiPool.NoStateOutlivesItsCalls" * doctest::timeout(60)) {
  CHECK(live_states_settled() == 0);  // nor those of the tests before
  {
    MpiPool pool;
    for (int i = 0; i < 50; ++i) pool.submit(tasks::identity, i).get();
    auto f = pool.submit(tasks::throw_kind, std::string("runtime_error"));
    CHECK_THROWS_AS(f.get(), std::runtime_error);
    pool.submit(tasks::add, 1, 2);  // never read
    CHECK(pool.map(tasks::identity, std::vector<int>(100, 1)).get().size() == 100);
  }
  CHECK(live_states_settled() == 0);
}

TEST_CASE("MpiPool.AFutureTellsWhereItsTasksExceptionWasRaised" * doctest::timeout(60)) {
  MpiPool pool;
  auto f = pool.submit(tasks::throw_kind, std::string("runtime_error"));
  f.wait();
  auto origin = f.remote_origin();
  REQUIRE(origin.has_value());
  CHECK(origin->type_name() == "std::runtime_error");
  CHECK(origin->function() == "throw_kind");
  CHECK(origin->pid() > 0);  // a worker of an agent's pool
  CHECK_FALSE(origin->backtrace().empty());
  CHECK_THROWS_AS(f.get(), std::runtime_error);
}

TEST_CASE("MpiPool.MapGivesEveryResultInInputOrderAcrossTheAgents" * doctest::timeout(120)) {
  MpiPool pool;
  std::vector<int> inputs(2000);
  for (int i = 0; i < 2000; ++i) inputs[static_cast<size_t>(i)] = 2000 - i;
  CHECK(pool.map(tasks::identity, inputs).get() == inputs);
  CHECK(pool.map(tasks::identity, inputs, 7).get() == inputs);  // 286 chunks, the last short
  std::vector<std::string> words{"a", "bb", "ccc"};
  CHECK(pool.map(tasks::echo, words, 1).get() == words);
  CHECK(pool.map(tasks::identity, std::vector<int>{}).get().empty());
  pool.map(ignore, std::vector<int>{1, 2, 3}).get();  // void: nothing to gather, still settles
}

TEST_CASE("MpiPool.MapFailsWithTheExceptionOfTheEarliestFailingChunk" * doctest::timeout(60)) {
  MpiPool pool;
  std::vector<std::string> kinds{"", "", "out_of_range", "", "invalid_argument", ""};
  REQUIRE_THROWS_WITH_AS(pool.map(tasks::throw_kind, kinds, 1).get(), "index 9 out of range", std::out_of_range);
  auto outcomes = pool.map(procpool::return_exceptions, tasks::throw_kind, kinds, 4).get();
  REQUIRE(outcomes.size() == kinds.size());
  CHECK(outcomes[0].value() == 0);
  CHECK(outcomes[3].value() == 0);
  CHECK_THROWS_AS(outcomes[2].value(), std::out_of_range);
  CHECK_THROWS_WITH_AS(outcomes[4].value(), "bad argument", std::invalid_argument);
  CHECK(outcomes[5].has_value());
}

TEST_CASE("MpiPool.ImapGivesEachOutcomeInOrderAndImapUnorderedGivesEveryIndexOnce" * doctest::timeout(60)) {
  MpiPool pool;
  std::vector<std::string> kinds{"", "out_of_range", "", "", "invalid_argument", "", ""};
  std::vector<int> seen;
  size_t i = 0;
  for (procpool::Result<int> r : pool.imap(tasks::throw_kind, kinds, 2)) {
    CHECK(r.has_value() == kinds[i].empty());
    seen.push_back(r.has_value() ? r.value() : -1);
    ++i;
  }
  CHECK(seen == std::vector<int>{0, -1, 0, 0, -1, 0, 0});
  std::vector<int> inputs(50);
  for (int k = 0; k < 50; ++k) inputs[static_cast<size_t>(k)] = k * 3;
  std::vector<int> got(50, -1);
  for (auto [index, r] : pool.imap_unordered(tasks::identity, inputs, 4)) got[index] = r.value();
  CHECK(got == inputs);
}

// A call an agent holds: tests/mpi/cancel.cpp.
TEST_CASE("MpiPool.CancelWithdrawsACallStillQueuedOnTheHost" * doctest::timeout(60)) {
  MpiPool pool;
  // Fill every agent's bound (in_flight_per_agent: eight per worker).
  size_t bound = 0;
  for (auto& a : pool.agents()) bound += std::max<size_t>(8 * a.workers, 8);
  std::vector<procpool::Future<double>> busy;
  for (size_t i = 0; i < bound; ++i) busy.push_back(pool.submit(tasks::sleep_ms, 300));
  // Behind them in FIFO order: it stays on the host until one ends.
  auto queued = pool.submit(tasks::add, 1, 2);
  CHECK(queued.cancel());
  CHECK(queued.cancelled());
  CHECK_THROWS_WITH_AS(queued.get(), "the call was cancelled before it was sent to an agent", procpool::TaskCancelled);
  for (auto& f : busy) CHECK(f.get() == 300);
  CHECK(pool.submit(tasks::add, 2, 3).get() == 5);
}
