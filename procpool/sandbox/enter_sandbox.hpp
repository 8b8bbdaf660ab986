// SPDX-License-Identifier: MIT
#pragma once
#include <procpool/sandbox/sandbox.hpp>

namespace procpool::detail {

// Run by a worker after its initializer and before it says it is ready:
// PR_SET_NO_NEW_PRIVS (no set-uid gain, and what an unprivileged seccomp
// filter requires), working directory "/", the environment replaced, the
// descriptors its own path needs under the filter opened, Landlock for
// read_only_files, then the seccomp filter on every thread. Nothing here
// can be undone: no-new-privs and filters are for life, and a filter
// loaded later by the task can only add restrictions. Returns nullptr,
// or the step that failed with errno set (the worker then fails its start).
const char* enter_sandbox(const Sandbox& sandbox) noexcept;

}  // namespace procpool::detail
