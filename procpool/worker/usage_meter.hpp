// SPDX-License-Identifier: MIT
#pragma once
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>

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
  // Opens /proc/self/clear_refs and /proc/self/status for the worker's
  // life, for a worker that will not be allowed to open them per call (a
  // sandboxed one). Without them the peak is the worker's, not the call's.
  static void keep_clear_refs_open() noexcept {
    if (clear_refs_fd_ < 0) clear_refs_fd_ = ::open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (status_fd_ < 0) status_fd_ = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  }
  UsageTrailer finish() const noexcept {
    UsageTrailer usage{};
    usage.wall_ns = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start_).count());
    rusage now{};
    ::getrusage(RUSAGE_SELF, &now);
    usage.cpu_ns = cpu_ns(now) - cpu_start_;
    // The address space's own peak (VmHWM), which clear_refs resets. Not
    // ru_maxrss: it is the process's, kept across exec, so a spawned
    // worker's starts at the host's peak (posix_spawn shares the host's
    // address space until the exec).
    uint64_t peak_kib = address_space_peak_kib();
    usage.peak_rss_bytes = (peak_kib ? peak_kib : static_cast<uint64_t>(now.ru_maxrss)) * 1024;
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
  static uint64_t address_space_peak_kib() noexcept {
    int fd = status_fd_ >= 0 ? status_fd_ : ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char text[4096];
    ssize_t n = ::pread(fd, text, sizeof text - 1, 0);
    if (fd != status_fd_) ::close(fd);
    if (n <= 0) return 0;
    text[n] = '\0';
    const char* line = std::strstr(text, "VmHWM:");
    return line ? std::strtoull(line + 6, nullptr, 10) : 0;
  }
  static inline int clear_refs_fd_ = -1;
  static inline int status_fd_ = -1;
  std::chrono::steady_clock::time_point start_;
  uint64_t cpu_start_ = 0;
};

}  // namespace procpool::detail
