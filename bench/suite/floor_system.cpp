// SPDX-License-Identifier: MIT
// One round of the floor: what the hardware and the kernel allow, measured
// in the same run as procpool so that ratios between them mean something.
//   floor-spin   two processes ping-pong a counter in shared memory, spinning
//   floor-futex  the same, each side sleeping in futex(2) for every message
//   thread-pool  a no-op through a minimal in-process pool (mutex, condvar,
//                std::packaged_task): a call with no process boundary
//   memcpy       one copy of each payload size: the ceiling for an echo
//   floor-copy   an echo of each payload size between two processes with the
//                fewest copies a copying design can make: into shared
//                memory, out into a fresh buffer (the callee's argument),
//                back in, and out into a fresh buffer (the caller's result)
//   floor-memfd  a new sealed memfd holding a copy of 1 MiB / 64 MiB, made
//                and mapped in one process: the floor of a new SharedBytes
#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <procpool/common/cpu_relax.hpp>

#include "../bench_util.hpp"
#include "../floors.hpp"
#include "protocol.hpp"
#include "system.hpp"

namespace bench {
namespace {

void nothing() {}

void emit_percentiles(const char* system, const char* figure, int round, const std::vector<double>& us) {
  emit(system, figure, "p50", round, percentile(us, 0.5));
  emit(system, figure, "p99", round, percentile(us, 0.99));
  emit(system, figure, "p999", round, percentile(us, 0.999));
}

void emit_latency(const char* system, int round, const std::vector<double>& us, const std::string& raw_dir) {
  emit_percentiles(system, "rtt", round, us);
  append_samples(raw_dir, system, round, us);
}

void thread_pool(int round, bool quick, const std::string& raw_dir) {
  MinimalThreadPool pool(2);
  int count = quick ? 500 : 20000;
  for (int i = 0; i < 1000; ++i) pool.submit(nothing).get();
  std::vector<double> us;
  for (int i = 0; i < count; ++i) {
    auto t0 = Clock::now();
    pool.submit(nothing).get();
    us.push_back(micros(Clock::now() - t0));
  }
  emit_latency("thread-pool", round, us, raw_dir);
  for (int tasks : quick ? std::vector<int>{5000} : std::vector<int>{100000, 1000000}) {
    std::vector<std::future<void>> futures;
    futures.reserve(static_cast<size_t>(tasks));
    auto t0 = Clock::now();
    for (int i = 0; i < tasks; ++i) futures.push_back(pool.submit(nothing));
    for (auto& f : futures) f.get();
    emit("thread-pool", "throughput", std::to_string(tasks), round, tasks / (micros(Clock::now() - t0) / 1e6));
  }
}

// Median µs of one memcpy of `bytes`, timed in batches long enough for the
// clock's own cost not to count, between buffers whose pages are resident.
double memcpy_micros(size_t bytes) {
  std::vector<char> src(bytes, 'x'), dst(bytes, 'y');
  int batch = static_cast<int>(std::max<size_t>(1, (size_t{1} << 24) / bytes));
  std::vector<double> per_copy;
  for (int sample = 0; sample < 7; ++sample) {
    auto t0 = Clock::now();
    for (int i = 0; i < batch; ++i) {
      std::memcpy(dst.data(), src.data(), bytes);
      asm volatile("" : : "r"(dst.data()) : "memory");
    }
    per_copy.push_back(micros(Clock::now() - t0) / batch);
  }
  return median(per_copy);
}

// A fresh allocation, not zeroed, as a decoder makes for a received vector
// (from malloc: a large one is fresh pages each time, as for procpool).
std::unique_ptr<char[]> fresh_buffer(size_t bytes) { return std::unique_ptr<char[]>(new char[bytes]); }

// Median µs of `reps` echoes of `bytes` through a shared buffer, both sides
// spinning as a hot procpool worker and waiter do: four copies and two
// fresh buffers per echo, and nothing else.
double copy_echo_micros(size_t bytes, int reps) {
  size_t shared = sizeof(PingPong) + bytes;
  void* region = mmap(nullptr, shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (region == MAP_FAILED) throw std::runtime_error(std::string("mmap: ") + std::strerror(errno));
  auto* pp = new (region) PingPong;
  char* buffer = static_cast<char*>(region) + sizeof(PingPong);
  std::memset(buffer, 0, bytes);                     // resident before either side times anything, as a ring is
  uint32_t total = static_cast<uint32_t>(reps + 1);  // the first is a warm-up
  pid_t child = fork();
  if (child < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (child == 0) {
    for (uint32_t i = 1; i <= total; ++i) {
      await_value(pp->ping, i, Wait::kSpin);
      auto argument = fresh_buffer(bytes);
      std::memcpy(argument.get(), buffer, bytes);
      std::memcpy(buffer, argument.get(), bytes);
      post_value(pp->pong, i, Wait::kSpin);
    }
    _exit(0);
  }
  std::vector<char> source(bytes, 'x');
  std::vector<double> us;
  for (uint32_t i = 1; i <= total; ++i) {
    auto t0 = Clock::now();
    std::memcpy(buffer, source.data(), bytes);
    post_value(pp->ping, i, Wait::kSpin);
    await_value(pp->pong, i, Wait::kSpin);
    auto result = fresh_buffer(bytes);
    std::memcpy(result.get(), buffer, bytes);
    asm volatile("" : : "r"(result.get()) : "memory");
    if (i > 1) us.push_back(micros(Clock::now() - t0));
  }
  waitpid(child, nullptr, 0);
  munmap(region, shared);
  return median(us);
}

// Median µs to make a sealed memfd holding a copy of `bytes` (as
// SharedBytes::copy_of does: pwrite, seal, map read-only) and to drop it.
double new_memfd_micros(size_t bytes, int reps) {
  std::vector<char> source(bytes, 'x');
  std::vector<double> us;
  for (int i = 0; i <= reps; ++i) {
    auto t0 = Clock::now();
    int fd = memfd_create("floor", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0 || ftruncate(fd, static_cast<off_t>(bytes)) != 0) throw std::runtime_error("memfd_create/ftruncate");
    for (size_t done = 0; done < bytes;) {
      ssize_t n = pwrite(fd, source.data() + done, bytes - done, static_cast<off_t>(done));
      if (n <= 0) throw std::runtime_error(std::string("pwrite: ") + std::strerror(errno));
      done += static_cast<size_t>(n);
    }
    fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    void* at = mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0);
    if (at == MAP_FAILED) throw std::runtime_error(std::string("mmap: ") + std::strerror(errno));
    munmap(at, bytes);
    close(fd);
    if (i > 0) us.push_back(micros(Clock::now() - t0));
  }
  return median(us);
}

}  // namespace

void measure_floor(const RoundOptions& options) {
  int r = options.round;
  int warmup = 2000, count = options.quick ? 500 : 100000;
  std::fprintf(stderr, "  floor round %d: shared-memory ping-pong\n", r);
  emit_latency("floor-spin", r, ping_pong(Wait::kSpin, warmup, count), options.raw_dir);
  emit_latency("floor-futex", r, ping_pong(Wait::kFutex, warmup, options.quick ? 500 : 20000), options.raw_dir);
  // As procpool's rtt_idle: a message every 2 ms, each side asleep when it comes.
  emit_percentiles("floor-futex", "rtt_idle", r,
                   ping_pong(Wait::kFutex, 10, options.quick ? 20 : 500, std::chrono::milliseconds(2)));
  std::fprintf(stderr, "  floor round %d: thread pool, memcpy\n", r);
  thread_pool(r, options.quick, options.raw_dir);
  for (const PayloadSize& size : payload_sizes(options.quick)) {
    double us = memcpy_micros(size.bytes);
    emit("memcpy", "payload_rtt", std::to_string(size.bytes), r, us);
    emit("memcpy", "payload_bw", std::to_string(size.bytes), r, static_cast<double>(size.bytes) / us);
  }
  std::fprintf(stderr, "  floor round %d: copying echo, new memfd\n", r);
  for (const PayloadSize& size : payload_sizes(options.quick)) {
    std::string param = std::to_string(size.bytes);
    double us = copy_echo_micros(size.bytes, size.reps);
    emit("floor-copy", "payload_rtt", param, r, us);
    emit("floor-copy", "payload_bw", param, r, static_cast<double>(size.bytes) / us);
    if (size.bytes < (size_t{1} << 20)) continue;  // as procpool's payload_new figure
    us = new_memfd_micros(size.bytes, size.reps);
    emit("floor-memfd", "payload_new_rtt", param, r, us);
    emit("floor-memfd", "payload_new_bw", param, r, static_cast<double>(size.bytes) / us);
  }
}

}  // namespace bench
