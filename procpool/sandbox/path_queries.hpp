// SPDX-License-Identifier: MIT
#pragma once
// Calls that name a path (stat, access), answered in a sandboxed worker by
// a SIGSYS handler, since the seccomp filter sees a path's pointer and
// never its text, and Landlock does not check them. DESIGN.md, "Sandbox",
// says why each answer is what it is.
#include <span>

#include <procpool/sandbox/sandbox.hpp>

namespace procpool::detail {

// The syscalls the filter traps (SCMP_ACT_TRAP in every mode) for the
// handler to answer: the stat family under every profile (glibc's fstat is
// one of them), the access family too under read_only_files.
std::span<const char* const> trapped_path_queries(bool reads_files) noexcept;

// Installs the handler in front of the crash handler, which keeps every
// other SIGSYS (a violation: recorded, then the worker dies by SIGSYS).
// Call after install_crash_handlers and before the filter is loaded (which
// then refuses any new SIGSYS handler). Returns nullptr, or the step that
// failed with errno set.
const char* install_path_query_handler(const Sandbox& sandbox) noexcept;

}  // namespace procpool::detail
