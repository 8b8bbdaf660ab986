// SPDX-License-Identifier: MIT
#pragma once
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>

#include <procpool/common/frame.hpp>

namespace procpool::detail {

// Measures one call (kMeasureUsage): wall and CPU time, and the peak
// resident memory, which the kernel lets a process reset
// (/proc/self/clear_refs, "5") so that the peak is this call's.
class UsageMeter {
 public:
  UsageMeter() noexcept {
    // The kernel reads what is written, not where: a kept descriptor
    // serves every call.
    int fd = clear_refs_fd_ >= 0 ? clear_refs_fd_ : ::open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      (void)!::write(fd, "5", 1);
      if (fd != clear_refs_fd_) ::close(fd);
    }
    start_ = std::chrono::steady_clock::now();
    cpu_start_ = cpu_ns();
  }
  // Opens /proc/self/clear_refs for the worker's life, for a worker that
  // will not be allowed to open it per call (a sandboxed one). Without it
  // the peak is the worker's, not the call's.
  static void keep_clear_refs_open() noexcept {
    if (clear_refs_fd_ < 0) clear_refs_fd_ = ::open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
  }
  UsageTrailer finish() const noexcept {
    UsageTrailer usage{};
    usage.wall_ns = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start_).count());
    rusage now{};
    ::getrusage(RUSAGE_SELF, &now);
    usage.cpu_ns = cpu_ns(now) - cpu_start_;
    usage.peak_rss_bytes = static_cast<uint64_t>(now.ru_maxrss) * 1024;
    return usage;
  }

 private:
  static uint64_t cpu_ns(const rusage& r) noexcept {
    auto ns = [](const timeval& t) {
      return static_cast<uint64_t>(t.tv_sec) * 1000000000u + static_cast<uint64_t>(t.tv_usec) * 1000u;
    };
    return ns(r.ru_utime) + ns(r.ru_stime);
  }
  static uint64_t cpu_ns() noexcept {
    rusage r{};
    ::getrusage(RUSAGE_SELF, &r);
    return cpu_ns(r);
  }
  static inline int clear_refs_fd_ = -1;
  std::chrono::steady_clock::time_point start_;
  uint64_t cpu_start_ = 0;
};

}  // namespace procpool::detail
