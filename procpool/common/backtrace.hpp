// SPDX-License-Identifier: MIT
#pragma once
// Backtraces for errors that come back from a worker: where a task threw
// (recorded by a __cxa_throw hook, only while a worker runs a task) and
// where it crashed (recorded by the worker's signal handler).
#include <cstdint>
#include <string>

namespace procpool::detail {

struct ControlBlock;

// Turns return addresses into one line per frame, with this process's
// symbols.
std::string symbolize(void* const* frames, int count);

// Where a module (the program, a shared library) is loaded in a process:
// the hash of its path, and its lowest and highest address.
struct LoadedModule {
  uint64_t path_hash;
  uint64_t start;
  uint64_t end;
};
inline constexpr int kMaxLoadedModules = 32;
// This process's modules (at most `max`); returns how many.
int loaded_modules(LoadedModule* out, int max) noexcept;
// The backtrace a worker's crash handler left in `control`, symbolized
// here. A forked worker has the host's layout; one exec'd (spawn) has its
// own, so each frame is first moved from the worker's module to where the
// same module is loaded here (ControlBlock::crash_modules, noted by the
// worker as it started). A frame in a module the host has not loaded is
// shown as an address.
std::string symbolize_crash(const ControlBlock& control);

// While on, every throw on this thread records its backtrace (cost: one
// backtrace() per throw). Workers turn it on around each task.
void record_throw_backtraces(bool on) noexcept;
// The backtrace of the most recent throw on this thread, symbolized.
std::string last_throw_backtrace();

}  // namespace procpool::detail
