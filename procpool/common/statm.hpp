// SPDX-License-Identifier: MIT
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>

namespace procpool::detail {

// Resident bytes from an open /proc/<pid>/statm ("size resident shared
// text lib data dt", in pages), read at offset 0 with pread (no seek: the
// descriptor can be kept and read again); 0 if it cannot be read.
inline uint64_t statm_resident_bytes(int fd) noexcept {
  char text[128];
  ssize_t n = ::pread(fd, text, sizeof text - 1, 0);
  if (n <= 0) return 0;
  text[n] = '\0';
  unsigned long long size = 0, resident = 0;
  if (std::sscanf(text, "%llu %llu", &size, &resident) != 2) return 0;
  return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace procpool::detail
