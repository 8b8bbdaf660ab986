// SPDX-License-Identifier: MIT
#pragma once
// Backtraces for errors that come back from a worker: where a task threw
// (recorded by a __cxa_throw hook, only while a worker runs a task) and
// where it crashed (recorded by the worker's signal handler).
#include <string>

namespace procpool::detail {

// Turns return addresses into one line per frame. The host can symbolize a
// worker's addresses itself: a forked worker has the host's address layout.
std::string symbolize(void* const* frames, int count);

// While on, every throw on this thread records its backtrace (cost: one
// backtrace() per throw). Workers turn it on around each task.
void record_throw_backtraces(bool on) noexcept;
// The backtrace of the most recent throw on this thread, symbolized.
std::string last_throw_backtrace();

}  // namespace procpool::detail
