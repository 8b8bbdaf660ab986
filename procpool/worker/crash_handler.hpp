// SPDX-License-Identifier: MIT
#pragma once
#include <procpool/common/worker_segment.hpp>

namespace procpool::detail {

// Installs handlers for the fatal signals (SEGV, BUS, FPE, ILL, ABRT, TRAP,
// SYS) on an alternate stack, so that even a stack overflow is caught: the
// handler stores the backtrace in `control` and re-raises the signal with
// its default action, so the host still sees the real cause of death. A
// SIGSYS from a seccomp filter also stores the trapped syscall (number and
// architecture) in `control`, for the host's SandboxViolation.
// Returns false (errno set) when the alternate stack cannot be set up.
// Call preload_unwinder() in the host before forking: the first backtrace()
// loads libgcc_s (dlopen, malloc), which a forked child must not do (another
// host thread may have held the loader's or the allocator's lock at fork).
bool install_crash_handlers(ControlBlock& control) noexcept;
void preload_unwinder() noexcept;

}  // namespace procpool::detail
