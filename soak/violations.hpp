// SPDX-License-Identifier: MIT
#pragma once
// Every broken expectation of the soak, counted; the first few kept with
// their text for the report.
#include <atomic>
#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

namespace soak {

class Violations {
 public:
  static constexpr size_t kKept = 20;
  void add(std::string what) {
    count_.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lock(mutex_);
    if (kept_.size() < kKept) kept_.push_back(std::move(what));
  }
  size_t count() const noexcept { return count_.load(std::memory_order_relaxed); }
  std::vector<std::string> kept() const {
    std::lock_guard lock(mutex_);
    return kept_;
  }

 private:
  std::atomic<size_t> count_{0};
  mutable std::mutex mutex_;
  std::vector<std::string> kept_;
};

}  // namespace soak
