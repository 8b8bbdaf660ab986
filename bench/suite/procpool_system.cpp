// SPDX-License-Identifier: MIT
// One round of procpool's figures (see figures.hpp for what each means).
// Each group of figures starts its own pool, as a user's program would. The
// memory figures come first, while this process's heap is still fresh: RSS
// growth only shows memory the allocator had to ask the kernel for.
#include <malloc.h>

#include <procpool/procpool.hpp>

#include <chrono>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "../bench_util.hpp"
#include "../timed_calls.hpp"
#include "protocol.hpp"
#include "supervision_figures.hpp"
#include "system.hpp"

// ---- the task functions (bench/python/pp_tasks.py has their twins) ----

void noop() {}
PROCPOOL_REGISTER(noop);

void noop_arg(int) {}
PROCPOOL_REGISTER(noop_arg);

std::vector<char> echo(std::vector<char> bytes) { return bytes; }
PROCPOOL_REGISTER(echo);

// The zero-copy payload type: echoed, it is handed over and back.
procpool::SharedBytes echo_shared(procpool::SharedBytes bytes) { return bytes; }
PROCPOOL_REGISTER(echo_shared);

// A worker that produces new bytes: a fresh SharedBytes holding a copy of
// its argument (one copy, into memory the kernel must first provide).
procpool::SharedBytes copy_shared(procpool::SharedBytes bytes) { return procpool::SharedBytes::copy_of(bytes.bytes()); }
PROCPOOL_REGISTER(copy_shared);

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }
PROCPOOL_REGISTER(sleep_ms);

// The seed example's CPU-bound loop (examples/advanced.cpp loops 1,000,000
// times, about 0.3 ms here), run `iterations` times: the scaling figure uses
// 10,000,000 (about 3 ms a call), so that what it shows is the pool's
// parallelism rather than its cost per call, which the other figures show.
long lucky_number(int n, long iterations) {
  if (n == 7) throw std::invalid_argument("Unlucky number!");
  long sum = 0;
  for (long i = 0; i < iterations; ++i) {
    sum += i * n;
    asm volatile("" : "+r"(sum));  // keep the compiler from folding the loop
  }
  return sum;
}
PROCPOOL_REGISTER(lucky_number);

__attribute__((no_sanitize("undefined"))) void segfault() {
  volatile int* volatile p = nullptr;  // the compiler can neither fold nor drop the store
  *p = 1;
}
PROCPOOL_REGISTER(segfault);

namespace bench {
namespace {

constexpr const char* kSystem = "procpool";
constexpr const char* kSharedSystem = "procpool-shared";  // payloads as SharedBytes
constexpr long kLuckyIterations = 10'000'000;

struct Counts {
  int warmup, round_trips, idle_round_trips, pending, cpu_calls, pool_samples, crash_samples;
  std::vector<int> throughput;
};

Counts counts(bool quick) {
  if (quick) return {100, 500, 20, 5000, 4, 2, 1, {5000}};
  return {2000, 20000, 500, 100000, 64, 10, 5, {100000, 1000000}};
}

void emit_percentiles(const std::string& figure, int round, const std::vector<double>& us) {
  emit(kSystem, figure, "p50", round, percentile(us, 0.5));
  emit(kSystem, figure, "p99", round, percentile(us, 0.99));
  emit(kSystem, figure, "p999", round, percentile(us, 0.999));
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "procpool: %s\n", what.c_str());
  std::exit(1);
}

// Host RSS per pending call, with both workers held busy so that every
// call stays queued; and the Pss of each (warmed, idle) worker.
void memory(int round, const Counts& n) {
  procpool::ProcessPool pool({.workers = 2});
  pool.submit(noop).get();
  pool.submit(noop).get();
  double pss = 0;
  for (pid_t pid : pool.worker_pids()) pss += proportional_kib(pid);
  emit(kSystem, "mem_worker", "2", round, pss / 2);

  constexpr int kHoldMs = 500;  // far longer than the submissions take
  std::vector<procpool::Future<void>> held{pool.submit(sleep_ms, kHoldMs), pool.submit(sleep_ms, kHoldMs)};
  // The caller's vector is not the library's cost: its pages are made
  // resident (default-constructed futures) before the count starts.
  std::vector<procpool::Future<void>> pending(static_cast<size_t>(n.pending));
  size_t before = resident_bytes();
  for (auto& f : pending) f = pool.submit(noop);
  size_t after = resident_bytes();
  if (pending.back().ready()) fail("the workers ran the pending calls before they were counted");
  emit(kSystem, "mem_pending", std::to_string(n.pending), round, static_cast<double>(after - before) / n.pending);
  for (auto& f : pending) f.cancel();
  for (auto& f : held) f.get();
}

// Latency four ways: awaited from a coroutine (as asyncio does it), a
// blocking get() back to back (the worker never sleeps), the same through
// futures::wait, and blocking calls 2 ms apart (the worker has gone to sleep on its futex each time).
void latency(int round, const Counts& n, const std::string& raw_dir) {
  procpool::ProcessPool pool({.workers = 2});
  procpool::EventLoop loop;
  for (int i = 0; i < n.warmup; ++i) pool.submit(noop).get();
  std::vector<double> awaited = loop.run_until_complete(awaited_round_trips(loop, pool, noop, n.round_trips));
  emit_percentiles("rtt", round, awaited);
  append_samples(raw_dir, kSystem, round, awaited);

  std::vector<double> hot = blocking_round_trips(pool, noop, n.round_trips);
  emit_percentiles("rtt_blocking", round, hot);
  emit_percentiles("rtt_wait", round, waited_round_trips(pool, noop, n.round_trips));
  std::vector<double> idle = blocking_round_trips(pool, noop, n.idle_round_trips, std::chrono::milliseconds(2));
  emit_percentiles("rtt_idle", round, idle);
}

void map_family(procpool::ProcessPool& pool, int round, int count);

// Throughput three ways, on a pool of its own: separate calls submitted
// then awaited (futures, and asyncio-style gather), and map.
void throughput(int round, const Counts& n) {
  procpool::ProcessPool pool({.workers = 2});
  procpool::EventLoop loop;
  for (int i = 0; i < n.warmup; ++i) pool.submit(noop).get();
  for (int count : n.throughput)
    emit(kSystem, "throughput", std::to_string(count), round, submit_all_then_get(pool, noop, count));
  int count = n.throughput.front();
  emit(kSystem, "throughput_gather", std::to_string(count), round,
       count / loop.run_until_complete(gather_seconds(loop, pool, noop, count)));
  for (int calls : n.throughput) {
    // As Python's map(chunksize=256): 256 calls to a frame.
    std::vector<int> inputs(static_cast<size_t>(calls), 1);
    auto t0 = Clock::now();
    pool.map(noop_arg, inputs, 256).get();
    emit(kSystem, "throughput_map", std::to_string(calls), round, calls / (micros(Clock::now() - t0) / 1e6));
  }
  map_family(pool, round, count);
}

// The map family over the same `count` no-op elements and chunks: all
// results at once (map), each element's own outcome at once (map with
// return_exceptions), and lazily, in input order (imap) or as chunks are
// answered (imap_unordered). Rates in elements per second.
void map_family(procpool::ProcessPool& pool, int round, int count) {
  std::vector<int> inputs(static_cast<size_t>(count), 1);
  auto rate = [&](const char* variant, auto&& run) {
    auto t0 = Clock::now();
    size_t failed = run();
    double seconds = micros(Clock::now() - t0) / 1e6;
    if (failed != 0) fail(std::string(variant) + ": " + std::to_string(failed) + " elements failed");
    emit(kSystem, "map_family", variant, round, count / seconds);
  };
  auto failures = [](auto&& outcomes) {
    size_t failed = 0;
    for (auto&& r : outcomes) {
      if constexpr (requires { r.result; }) failed += !r.result.has_value();
      else failed += !r.has_value();
    }
    return failed;
  };
  rate("map", [&] {
    pool.map(noop_arg, inputs, 256).get();
    return size_t{0};
  });
  rate("map_each", [&] { return failures(pool.map(procpool::return_exceptions, noop_arg, inputs, 256).get()); });
  rate("imap", [&] { return failures(pool.imap(noop_arg, inputs, 256)); });
  rate("imap_unordered", [&] { return failures(pool.imap_unordered(noop_arg, inputs, 256)); });
}

// Round trips of fn(bytes), the first one a warm-up (the ring's pages, the
// allocator); emits the median and size / median as `figure`_rtt and _bw.
template <class Bytes, class Fn>
void time_echo(procpool::ProcessPool& pool, Fn fn, const Bytes& bytes, const PayloadSize& size, const char* system,
               const std::string& figure, int round) {
  auto last = [](const auto& b) { return std::to_integer<int>(std::as_bytes(std::span(b.data(), b.size())).back()); };
  pool.submit(fn, bytes).get();
  std::vector<double> us;
  for (int i = 0; i < size.reps; ++i) {
    auto t0 = Clock::now();
    Bytes back = pool.submit(fn, bytes).get();
    us.push_back(micros(Clock::now() - t0));
    if (back.size() != bytes.size() || last(back) != last(bytes)) fail(figure + " returned other bytes");
  }
  std::string param = std::to_string(size.bytes);
  emit(system, figure + "_rtt", param, round, median(us));
  emit(system, figure + "_bw", param, round, static_cast<double>(size.bytes) / median(us));
}

void payload(int round, bool quick) {
  procpool::ProcessPool pool({.workers = 2});
  for (const PayloadSize& size : payload_sizes(quick)) {
    std::vector<char> bytes(size.bytes);
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 131);
    time_echo(pool, echo, bytes, size, kSystem, "payload", round);
    auto shared = procpool::SharedBytes::copy_of(std::as_bytes(std::span(bytes)));
    time_echo(pool, echo_shared, shared, size, kSharedSystem, "payload", round);
    time_echo(pool, copy_shared, shared, size, kSharedSystem, "payload_new", round);
  }
}

void scaling(int round, const Counts& n) {
  double one = 0;
  for (int workers : {1, 2, 4}) {
    procpool::ProcessPool pool({.workers = static_cast<size_t>(workers)});
    std::vector<procpool::Future<long>> warm;  // every worker started and its code paged in
    for (int i = 0; i < workers; ++i) warm.push_back(pool.submit(lucky_number, 1, kLuckyIterations));
    for (auto& f : warm) f.get();
    std::vector<procpool::Future<long>> futures;
    auto t0 = Clock::now();
    for (int i = 0; i < n.cpu_calls; ++i) futures.push_back(pool.submit(lucky_number, i % 6 + 1, kLuckyIterations));
    for (auto& f : futures) f.get();
    double seconds = micros(Clock::now() - t0) / 1e6;
    emit(kSystem, "scaling", std::to_string(workers), round, seconds);
    if (workers == 1) one = seconds;
    else emit(kSystem, "speedup", std::to_string(workers), round, one / seconds);
  }
}

// Calls of uneven length: a long one, then short ones submitted together
// on two workers. The short ones need one worker's time (60 ms) once none
// waits behind the long call (work stealing).
void uneven(int round, const Counts& n) {
  procpool::ProcessPool pool({.workers = 2});
  std::vector<double> ms;
  for (int s = 0; s < n.crash_samples; ++s) {
    std::vector<procpool::Future<void>> warm{pool.submit(sleep_ms, 10), pool.submit(sleep_ms, 10)};
    for (auto& f : warm) f.get();
    auto t0 = Clock::now();
    auto long_call = pool.submit(sleep_ms, 300);
    std::vector<procpool::Future<void>> short_calls;
    for (int i = 0; i < 6; ++i) short_calls.push_back(pool.submit(sleep_ms, 10));
    for (auto& f : short_calls) f.get();
    ms.push_back(millis(Clock::now() - t0));
    long_call.get();
  }
  emit(kSystem, "uneven", "2", round, median(ms));
}

// Start-up to the first result, and destruction of the idle pool.
void lifecycle(int round, const Counts& n) {
  std::vector<double> up, down;
  for (int i = 0; i < n.pool_samples; ++i) {
    std::optional<procpool::ProcessPool> pool;
    auto t0 = Clock::now();
    pool.emplace(procpool::PoolOptions{.workers = 2});
    pool->submit(noop).get();
    auto t1 = Clock::now();
    pool.reset();
    up.push_back(millis(t1 - t0));
    down.push_back(millis(Clock::now() - t1));
  }
  emit(kSystem, "startup", "2", round, median(up));
  emit(kSystem, "shutdown", "2", round, median(down));
}

// A segfault with 40 short calls queued behind it on 2 workers: when its
// future fails, and how many of the others failed. Then, with 1 worker so that only the
// replacement can serve it, when a no-op submitted just after it is done.
void crash(int round, const Counts& n) {
  constexpr int kOthers = 40;
  std::vector<double> fail_ms, replace_ms;
  int others_failed = 0;
  {
    procpool::ProcessPool pool({.workers = 2});
    pool.submit(noop).get();
    for (int s = 0; s < n.crash_samples; ++s) {
      auto t0 = Clock::now();
      auto crashing = pool.submit(segfault);
      std::vector<procpool::Future<void>> others;
      for (int i = 0; i < kOthers; ++i) others.push_back(pool.submit(sleep_ms, 2));
      try {
        crashing.get();
        fail("the crashing call succeeded");
      } catch (const procpool::WorkerCrashed&) {
        fail_ms.push_back(millis(Clock::now() - t0));
      }
      for (auto& f : others) {
        try {
          f.get();
        } catch (const std::exception&) {
          ++others_failed;
        }
      }
    }
  }
  {
    procpool::ProcessPool pool({.workers = 1});
    pool.submit(noop).get();
    for (int s = 0; s < n.crash_samples; ++s) {
      auto t0 = Clock::now();
      auto crashing = pool.submit(segfault);
      auto next = pool.submit(noop);
      try {
        crashing.get();
      } catch (const procpool::WorkerCrashed&) {
      }
      next.get();
      replace_ms.push_back(millis(Clock::now() - t0));
    }
  }
  emit(kSystem, "crash_fail", "2", round, median(fail_ms));
  emit(kSystem, "crash_others_failed", std::to_string(kOthers), round,
       static_cast<double>(others_failed) / n.crash_samples);
  emit(kSystem, "crash_replace", "1", round, median(replace_ms));
}

void progress(int round, const char* what) { std::fprintf(stderr, "  procpool round %d: %s\n", round, what); }

}  // namespace

void measure_procpool(const RoundOptions& options) {
  Counts n = counts(options.quick);
  int r = options.round;
  try {
    progress(r, "memory");
    memory(r, n);
    // Give back the heap the 100,000 pending calls grew (as the Python side
    // does before its memory figures), so that the forks below copy the
    // page tables of this program, not of that figure's leftovers.
    malloc_trim(0);
    // Forking costs time in proportion to the host's resident memory (its
    // page tables are copied), so these come before the payload figure
    // grows this process by hundreds of MiB.
    progress(r, "start-up, shutdown, crash");
    lifecycle(r, n);
    crash(r, n);
    progress(r, "deadlines, cancels, supervision");
    measure_supervision(r, options.quick);
    progress(r, "latency");
    latency(r, n, options.raw_dir);
    progress(r, "throughput");
    throughput(r, n);
    progress(r, "payload");
    payload(r, options.quick);
    progress(r, "CPU scaling");
    scaling(r, n);
    progress(r, "uneven calls");
    uneven(r, n);
  } catch (const std::exception& e) {
    fail(e.what());
  }
}

}  // namespace bench
