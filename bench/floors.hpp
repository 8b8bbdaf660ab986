// SPDX-License-Identifier: MIT
#pragma once
// The floors both benchmarks measure beside procpool: two processes
// ping-ponging a counter in shared memory (spinning, or sleeping in futex(2)
// for every message), and the simplest in-process thread pool.
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <procpool/common/cpu_relax.hpp>

#include "bench_util.hpp"

namespace bench {

// Two counters on separate cache lines of a MAP_SHARED page: the host
// writes `ping`, the child answers on `pong`. Release/acquire pairs order
// nothing else here (there is no payload); they are what a real ring needs.
struct PingPong {
  alignas(64) std::atomic<uint32_t> ping{0};
  alignas(64) std::atomic<uint32_t> pong{0};
};
static_assert(std::atomic<uint32_t>::is_always_lock_free);

enum class Wait { kSpin, kFutex };

inline void futex_wait(std::atomic<uint32_t>& word, uint32_t seen) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT, seen, nullptr, nullptr, 0);
}
inline void futex_wake(std::atomic<uint32_t>& word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE, 1, nullptr, nullptr, 0);
}

inline void await_value(std::atomic<uint32_t>& word, uint32_t want, Wait how) {
  for (uint32_t seen; (seen = word.load(std::memory_order_acquire)) != want;) {
    if (how == Wait::kFutex) futex_wait(word, seen);
    else procpool::detail::cpu_relax();
  }
}

inline void post_value(std::atomic<uint32_t>& word, uint32_t value, Wait how) {
  word.store(value, std::memory_order_release);
  if (how == Wait::kFutex) futex_wake(word);  // always: the floor has no sleeper bit
}

// Returns one sample (µs) per timed round trip; `gap` apart, if not zero,
// so that both sides have long gone to sleep when a message comes.
inline std::vector<double> ping_pong(Wait how, int warmup, int count, std::chrono::microseconds gap = {}) {
  void* page = mmap(nullptr, sizeof(PingPong), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) throw std::runtime_error(std::string("mmap: ") + std::strerror(errno));
  auto* pp = new (page) PingPong;
  uint32_t total = static_cast<uint32_t>(warmup + count);
  pid_t child = fork();
  if (child < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (child == 0) {
    for (uint32_t i = 1; i <= total; ++i) {
      await_value(pp->ping, i, how);
      post_value(pp->pong, i, how);
    }
    _exit(0);
  }
  std::vector<double> us;
  us.reserve(static_cast<size_t>(count));
  for (uint32_t i = 1; i <= total; ++i) {
    if (gap.count()) std::this_thread::sleep_for(gap);
    auto t0 = Clock::now();
    post_value(pp->ping, i, how);
    await_value(pp->pong, i, how);
    if (i > static_cast<uint32_t>(warmup)) us.push_back(micros(Clock::now() - t0));
  }
  waitpid(child, nullptr, 0);
  munmap(page, sizeof(PingPong));
  return us;
}

// The simplest pool a C++ programmer writes: one locked queue, N threads.
class MinimalThreadPool {
 public:
  explicit MinimalThreadPool(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { serve(); });
  }
  ~MinimalThreadPool() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    ready_.notify_all();
    for (auto& t : threads_) t.join();
  }
  std::future<void> submit(void (*fn)()) {
    std::packaged_task<void()> task(fn);
    std::future<void> result = task.get_future();
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(task));
    }
    ready_.notify_one();
    return result;
  }

 private:
  void serve() {
    for (;;) {
      std::packaged_task<void()> task;
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();
    }
  }
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::packaged_task<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace bench
