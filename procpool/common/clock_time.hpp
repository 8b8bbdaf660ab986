// SPDX-License-Identifier: MIT
#pragma once
// Users' timeouts as the steady clock's durations and deadlines, saturating:
// `wait_for(std::chrono::hours::max())` means "no limit", as
// PoolOptions::destructor_wait's milliseconds::max() does, where the plain
// `now() + duration_cast<steady_clock::duration>(timeout)` overflowed (a
// deadline in the past: the wait returned false at once). And a timeout as
// text for messages.
#include <chrono>
#include <cstdio>
#include <string>

namespace procpool::detail {

// `d` in the steady clock's unit, clamped to its range.
template <class Rep, class Period>
std::chrono::steady_clock::duration clock_duration(std::chrono::duration<Rep, Period> d) noexcept {
  using D = std::chrono::steady_clock::duration;
  // Compared as floating seconds: in either integer unit the comparison
  // could itself overflow.
  std::chrono::duration<double> seconds = d;
  if (seconds >= std::chrono::duration<double>(D::max())) return D::max();
  if (seconds <= std::chrono::duration<double>(D::min())) return D::min();
  return std::chrono::duration_cast<D>(d);
}

// now + d: time_point::max() when that is past the clock's range; now for
// d <= 0 (a wait that only looks).
template <class Rep, class Period>
std::chrono::steady_clock::time_point deadline_after(std::chrono::duration<Rep, Period> d) noexcept {
  using Clock = std::chrono::steady_clock;
  auto now = Clock::now();
  auto step = clock_duration(d);
  if (step <= Clock::duration::zero()) return now;
  if (step >= Clock::time_point::max() - now) return Clock::time_point::max();
  return now + step;
}

// "250 ms", "1.5 s", "20 µs": three significant digits at most.
template <class Rep, class Period>
std::string duration_text(std::chrono::duration<Rep, Period> d) {
  double s = std::chrono::duration<double>(d).count();
  double magnitude = s < 0 ? -s : s;
  const char* unit = "s";
  if (magnitude < 1e-3) s *= 1e6, unit = "µs";
  else if (magnitude < 1) s *= 1e3, unit = "ms";
  char text[64];
  std::snprintf(text, sizeof text, "%.3g %s", s, unit);
  return text;
}

}  // namespace procpool::detail
