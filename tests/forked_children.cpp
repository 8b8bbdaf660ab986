// SPDX-License-Identifier: MIT
// A pool, and the futures of its calls, in a process that fork() copied
// them into: the workers, rings and threads stayed with the parent. In the
// child every use is refused with a procpool::Error that says so (a wait
// on a call pending at the fork throws instead of hanging for ever), the
// copy's destruction touches nothing of the parent's, and a new pool there
// serves.
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include <procpool/procpool.hpp>

#include "support/census.hpp"
#include "support/task_functions.hpp"

using namespace std::chrono_literals;

namespace {

// True if `use` throws a procpool::Error (and nothing more specific) whose
// text says that this process is a fork of the pool's.
template <class Use>
bool refused_as_forked(Use use) {
  try {
    use();
  } catch (const procpool::Error& e) {
    return std::string(e.what()).find("fork") != std::string::npos;
  } catch (...) {
  }
  return false;
}

}  // namespace

TEST_CASE("ForkedChildren.APoolCopiedIntoAChildRefusesEveryUseThereAndTheParentsPoolServesOn" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1, .start_method = census::inheriting_start_method()});
  pid_t worker = pool.submit(tasks::pid_of_worker).get();
  census::Snapshot before;
  int failed = census::exit_code_in_child([&] {
    int bad = 0;
    auto call = pool.submit(tasks::identity, 7);
    if (!call.ready() || !refused_as_forked([&] { call.get(); })) bad |= 1;
    if (!refused_as_forked([&] { pool.call<int>("identity", 7).get(); })) bad |= 2;
    if (!refused_as_forked([&] { (void)pool.stats(); })) bad |= 4;
    if (!refused_as_forked([&] { (void)pool.worker_pids(); })) bad |= 8;
    if (!refused_as_forked([&] { pool.shutdown(); })) bad |= 16;
    if (!refused_as_forked([&] { pool.terminate(); })) bad |= 32;
    if (!refused_as_forked([&] { pool.kill(); })) bad |= 64;
#if !defined(__SANITIZE_THREAD__)
    // What the error says to do works: a pool of its own serves. (Not under
    // TSan, which refuses to start threads in a process forked from a
    // multi-threaded one: die_after_fork.)
    procpool::ProcessPool own({.workers = 1, .start_method = procpool::StartMethod::fork});
    if (own.submit(tasks::identity, 8).get() != 8) bad |= 128;
#endif
    return bad;
  });
  CHECK(failed == 0);
  // None of it reached the parent's worker: the same one serves.
  CHECK(pool.submit(tasks::pid_of_worker).get() == worker);
  CHECK(pool.stats().worker_deaths == 0);
  CHECK(census::leaks_since(before).empty());
}

TEST_CASE("ForkedChildren.AWaitInAChildOnACallPendingAtTheForkThrowsInsteadOfHanging" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1, .start_method = census::inheriting_start_method()});
  auto done = pool.submit(tasks::identity, 5);
  done.wait();
  auto pending = pool.submit(tasks::sleep_ms, 300);
  int failed = census::exit_code_in_child([&] {
    int bad = 0;
    if (!refused_as_forked([&] { pending.wait(); })) bad |= 1;
    if (!refused_as_forked([&] { (void)pending.wait_for(10s); })) bad |= 2;
    if (!refused_as_forked([&] { (void)pending.get(); })) bad |= 4;
    if (!refused_as_forked([&] { (void)pending.status(); })) bad |= 8;
    if (pending.cancel()) bad |= 16;  // the parent's call, not the child's to cancel
    if (pending.ready()) bad |= 32;
    // A callback or an await would never run.
    bool called = false;
    if (!refused_as_forked([&] { pending.then([&](procpool::Future<double>) { called = true; }); })) bad |= 128;
    procpool::EventLoop loop;
    if (!refused_as_forked([&] {
          loop.run_until_complete(
              [](procpool::Future<double> f) -> procpool::Task<double> { co_return co_await f; }(pending));
        }))
      bad |= 256;
    if (!refused_as_forked([&] { procpool::futures::wait(std::vector{pending}); })) bad |= 512;
    if (!refused_as_forked([&] { procpool::futures::as_completed<double>(std::vector{pending}).next(); })) bad |= 1024;
    // On a settled one, as anywhere, the callback runs at once.
    done.then([&](procpool::Future<int>) { called = true; });
    if (!called) bad |= 2048;
    // A call settled before the fork has its value in the child too.
    try {
      if (done.get() != 5) bad |= 64;
    } catch (...) {
      bad |= 64;
    }
    return bad;
  });
  CHECK(failed == 0);
  CHECK(pending.get() == 300);  // the parent's call went on
}

TEST_CASE("ForkedChildren.DestroyingThePoolsCopyInAChildLeavesTheParentsPoolWhole" * doctest::timeout(60)) {
  auto pool = std::make_unique<procpool::ProcessPool>(
      procpool::PoolOptions{.workers = 2, .start_method = census::inheriting_start_method()});
  auto workers = pool->worker_pids();
  auto pending = pool->submit(tasks::sleep_ms, 200);
  int failed = census::exit_code_in_child([&] {
    pool.reset();  // the destructor, in the child
    return 0;
  });
  CHECK(failed == 0);
  // The parent's calls still settle, also those whose answers its reactor
  // takes (a callback, a call that ends while nobody polls): the child
  // signalled no worker and left the epoll instance the two share as it was.
  auto called = std::make_shared<std::atomic<int>>(0);
  pool->submit(tasks::identity, 3).then([called](procpool::Future<int> f) { *called = f.get(); });
  CHECK(census::eventually([&] { return *called == 3; }));
  CHECK(census::eventually([&] { return pending.ready(); }));  // nobody polls: the reactor takes it
  CHECK(pending.get() == 200);
  CHECK(pool->worker_pids() == workers);
  CHECK(pool->stats().worker_deaths == 0);
}
