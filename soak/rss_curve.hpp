// SPDX-License-Identifier: MIT
#pragma once
// The host's resident memory at every 10 % of the soak's progress (the
// larger of calls claimed over calls asked and time over --seconds), taken
// by a thread of its own, which also stops the soak when the time is up.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace soak {

class CallBook;

class RssCurve {
 public:
  struct Point {
    int percent;  // of progress; 101 for the end, after the last pool is gone
    uint64_t bytes;
  };
  RssCurve(CallBook& book, uint64_t calls, double seconds);
  ~RssCurve() { stop(); }
  void stop();
  void add_end_point();
  std::vector<Point> points() const;
  // The point at 20 % (or the first after it): warm-up is over.
  static constexpr int kWarmPercent = 20;
  // "" if no point after warm-up exceeds it by more than `bound`; else why.
  std::string check(uint64_t bound_bytes, uint64_t& warm, uint64_t& end) const;
  std::string describe() const;

 private:
  void run();

  CallBook& book_;
  uint64_t calls_;
  double seconds_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::vector<Point> points_;
  std::thread thread_;
};

}  // namespace soak
