// SPDX-License-Identifier: MIT
#pragma once
// The text of an errno value, for error messages. std::strerror may return a
// buffer shared by every thread (glibc does for an unknown value), and the
// pool builds these messages on its own threads while a user's threads may
// call strerror too; strerror_r writes into the caller's buffer instead.
#include <string.h>

#include <cstddef>
#include <string>

namespace procpool::detail {

// glibc declares the GNU strerror_r (returns the text, which may or may not
// be the buffer) when _GNU_SOURCE is set, as g++ and clang++ set it for C++,
// and the XSI one (fills the buffer, returns 0 or an error) otherwise; these
// two overloads take either result.
inline const char* strerror_r_text(const char* text, const char* /*buffer*/) { return text; }
inline const char* strerror_r_text(int rc, const char* buffer) { return rc == 0 ? buffer : "unknown error"; }

// Allocates nothing: for a forked child of a threaded host, where malloc's
// lock may be held by a thread that no longer exists.
inline const char* errno_text(int err, char* buffer, std::size_t size) noexcept {
  return strerror_r_text(strerror_r(err, buffer, size), buffer);
}

inline std::string errno_text(int err) {
  char buffer[128];
  return errno_text(err, buffer, sizeof buffer);
}

}  // namespace procpool::detail
