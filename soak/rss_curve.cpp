// SPDX-License-Identifier: MIT
#include "rss_curve.hpp"

#include <algorithm>
#include <cstdio>

#include "call_book.hpp"
#include "host_census.hpp"

namespace soak {

RssCurve::RssCurve(CallBook& book, uint64_t calls, double seconds)
    : book_(book), calls_(calls), seconds_(seconds), thread_([this] { run(); }) {}

void RssCurve::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void RssCurve::run() {
  int next = 10;
  std::unique_lock lock(mutex_);
  while (!stopping_ && next <= 100) {
    wake_.wait_for(lock, std::chrono::milliseconds(20));
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    double progress = static_cast<double>(book_.claimed()) / static_cast<double>(calls_);
    if (seconds_ > 0) {
      progress = std::max(progress, elapsed / seconds_);
      if (elapsed >= seconds_) book_.stop();
    }
    while (next <= 100 && progress * 100 >= next) {
      points_.push_back({next, resident_bytes()});
      std::printf("soak: %3d %% after %.0f s, %llu calls claimed, RSS %.1f MiB\n", next, elapsed,
                  static_cast<unsigned long long>(book_.claimed()), points_.back().bytes / 1048576.0);
      std::fflush(stdout);
      next += 10;
    }
  }
}

void RssCurve::add_end_point() {
  std::lock_guard lock(mutex_);
  points_.push_back({101, resident_bytes()});
}

std::vector<RssCurve::Point> RssCurve::points() const {
  std::lock_guard lock(mutex_);
  return points_;
}

std::string RssCurve::check(uint64_t bound_bytes, uint64_t& warm, uint64_t& end) const {
  auto curve = points();
  warm = end = 0;
  bool warmed = false;
  std::string why;
  for (const Point& p : curve) {
    end = p.bytes;
    if (!warmed) {
      if (p.percent >= kWarmPercent) {
        warm = p.bytes;
        warmed = true;
      }
      continue;
    }
    if (p.bytes > warm + bound_bytes && why.empty()) {
      char text[160];
      std::snprintf(text, sizeof text,
                    "RSS grew from %.1f MiB after warm-up to %.1f MiB at %s%d %%, over the bound of +%.0f MiB",
                    warm / 1048576.0, p.bytes / 1048576.0, p.percent > 100 ? "the end, " : "", std::min(p.percent, 100),
                    bound_bytes / 1048576.0);
      why = text;
    }
  }
  return why;
}

std::string RssCurve::describe() const {
  std::string out = "RSS MiB:";
  for (const Point& p : points()) {
    char text[48];
    if (p.percent > 100) std::snprintf(text, sizeof text, " end %.1f", p.bytes / 1048576.0);
    else std::snprintf(text, sizeof text, " %d%% %.1f", p.percent, p.bytes / 1048576.0);
    out += text;
  }
  return out;
}

}  // namespace soak
