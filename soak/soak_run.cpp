// SPDX-License-Identifier: MIT
#include "soak_run.hpp"

#include <chrono>
#include <cstdio>
#include <memory>
#include <semaphore>
#include <thread>
#include <vector>

#include <procpool/procpool.hpp>

#include "call_book.hpp"
#include "call_maker.hpp"
#include "host_census.hpp"
#include "lanes.hpp"
#include "outside_hand.hpp"
#include "rss_curve.hpp"
#include "run_ledger.hpp"
#include "violations.hpp"

namespace soak {
namespace {

// How long an epoch's calls may take to settle once its pool is gone (they
// all should have: the pool settles every call before it is destroyed).
constexpr int kSettlePatienceMs = 30'000;

struct HandCounts {
  uint64_t kills = 0, stops = 0, cancels = 0;
};

struct Totals {
  EpochFindings found;
  uint64_t pools = 0, worker_deaths = 0, respawns = 0;
};

// A census that may take a moment to come true (threads ending, reaping).
std::string leaks_after(const HostCensus& before) {
  std::string leaks;
  for (int tries = 0; tries < 250; ++tries) {
    leaks = HostCensus::leaks(before, HostCensus::take());
    if (leaks.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return leaks;
}

// One epoch: a pool, the lanes until the ids run out, a shutdown.
void run_epoch(const SoakOptions& options, uint64_t epoch, CallBook& book, OutsideHand& hand, Violations& violations,
               Totals& totals) {
  bool cancel_futures = epoch % 2 == 1;
  std::vector<std::unique_ptr<std::counting_semaphore<>>> windows;
  for (unsigned t = 0; t < options.threads; ++t)
    windows.push_back(std::make_unique<std::counting_semaphore<>>(options.window));
  procpool::ProcessPool pool(
      {.workers = options.workers, .start_method = options.start_method, .max_pending = options.max_pending});
  CallMaker maker(pool, book, hand);
  {
    std::vector<std::jthread> lanes;
    uint64_t seed = options.seed * 1'000'003 + epoch * 64;
    for (unsigned t = 0; t < options.threads; ++t)
      lanes.emplace_back([&, t] {
        run_thread_lane(book, maker, *windows[t], FaultPlan(seed + t, options.hostile_per_100k), violations);
      });
    lanes.emplace_back([&] { run_loop_lane(book, maker, FaultPlan(seed + 63, options.hostile_per_100k), violations); });
  }
  pool.shutdown({.wait = true, .cancel_futures = cancel_futures});
  procpool::PoolStats stats = pool.stats();
  totals.pools += 1;
  totals.worker_deaths += stats.worker_deaths;
  totals.respawns += stats.respawns;
}

std::string n(uint64_t v) { return std::to_string(v); }

std::string describe(const SoakOptions& options, const Totals& totals, const CallBook& book, const HandCounts& hand,
                     double seconds) {
  auto count = [&](Outcome o) { return n(book.outcome_count(o)); };
  uint64_t crashed = book.outcome_count(Outcome::crashed_segv) + book.outcome_count(Outcome::crashed_abort) +
                     book.outcome_count(Outcome::crashed_exit3) + book.outcome_count(Outcome::crashed_kill);
  char rate[64];
  std::snprintf(rate, sizeof rate, "%.0f s = %.0f calls/s", seconds, totals.found.issued / std::max(seconds, 1e-9));
  return "calls " + n(totals.found.issued) + " in " + rate + " (" + procpool::to_string(options.start_method) + ", " +
         n(options.workers) + " workers, " + n(options.threads) + " threads + event loop, seed " + n(options.seed) +
         ", " + n(totals.pools) + " pools); value " + count(Outcome::value) + ", runtime_error " +
         count(Outcome::raised) + ", WorkerCrashed " + n(crashed) + " (SIGSEGV " + count(Outcome::crashed_segv) +
         ", SIGABRT " + count(Outcome::crashed_abort) + ", exit 3 " + count(Outcome::crashed_exit3) + ", SIGKILL " +
         count(Outcome::crashed_kill) + " of " + n(hand.kills) + " sent), TaskTimeout " + count(Outcome::timed_out) +
         " (" + n(hand.stops) + " workers SIGSTOPped), ProtocolError " + count(Outcome::protocol_error) + " (of " +
         n(book.kind_count(Kind::forged_frames)) + " workers that forged " + n(book.forged_frames()) +
         " frames), TaskCancelled " + count(Outcome::cancelled) + " (cancel() true " + n(book.cancels_true()) +
         ", false " + n(book.cancels_false()) + "), wrong " + count(Outcome::wrong) + "; map items " +
         n(book.kind_count(Kind::map_item)) + ", payloads " +
         n(book.kind_count(Kind::text_payload) + book.kind_count(Kind::shared_payload)) + "; worker deaths " +
         n(totals.worker_deaths) + "; runs twice " + n(totals.found.ran_twice) + ", lost " + n(totals.found.lost) +
         ", settled twice " + n(totals.found.settled_twice);
}

std::string mib(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", bytes / 1048576.0);
  return text;
}

}  // namespace

SoakReport run_soak(const SoakOptions& options, Violations& violations) {
#if defined(__SANITIZE_THREAD__)
  // TSan's runtime starts a thread of its own when the program makes its
  // first: made here, before the census, it is not counted as the soak's.
  std::thread([] {}).join();
#endif
  HostCensus before = HostCensus::take();
  auto start = std::chrono::steady_clock::now();
  Totals totals;
  SoakReport report;
  std::string summary, rss;
  HandCounts hand_counts;
  {
    RunLedger ledger(options.calls);
    CallBook book(options.calls, violations);
    RssCurve curve(book, options.calls, options.seconds);
    {
      OutsideHand hand(ledger, book);
      HostCensus idle = HostCensus::take();  // with the hand's and the curve's threads
      for (uint64_t begin = 0, epoch = 0; begin < options.calls && !book.stopped();
           begin += options.rebuild_every, ++epoch) {
        uint64_t end = std::min(begin + options.rebuild_every, options.calls);
        book.open_epoch(static_cast<uint32_t>(begin), static_cast<uint32_t>(end), epoch % 2 == 1);
        run_epoch(options, epoch, book, hand, violations, totals);
        EpochFindings found = book.check_epoch(ledger, kSettlePatienceMs);
        totals.found.issued += found.issued;
        totals.found.lost += found.lost;
        totals.found.ran_twice += found.ran_twice;
        totals.found.settled_twice += found.settled_twice;
        // Between pools: every worker reaped, nothing of the pool left.
        if (std::string leaks = leaks_after(idle); !leaks.empty())
          violations.add("after pool " + std::to_string(epoch + 1) + " was destroyed: " + leaks);
      }
      hand_counts = {hand.kills_sent(), hand.stops_sent(), hand.cancels_made()};
    }
    curve.add_end_point();
    curve.stop();
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    summary = describe(options, totals, book, hand_counts, seconds);
    uint64_t warm = 0, end = 0;
    if (std::string why = curve.check(options.rss_bound_mib << 20, warm, end); !why.empty()) violations.add(why);
    rss = "RSS " + mib(warm) + " after warm-up -> " + mib(end) + " at the end (bound +" + n(options.rss_bound_mib) +
          " MiB)";
    report.curve = curve.describe();
  }
  // The ledger is unlinked, the hand's and the curve's threads joined.
  std::string leaks = leaks_after(before);
  if (!leaks.empty()) violations.add("at the end: " + leaks);
  report.summary = summary + "; leaks " + (leaks.empty() ? "none" : leaks) + "; " + rss;
  report.passed = violations.count() == 0;
  return report;
}

}  // namespace soak
