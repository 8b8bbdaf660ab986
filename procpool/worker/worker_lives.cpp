// SPDX-License-Identifier: MIT
#include <procpool/worker/worker_lives.hpp>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include <procpool/common/archive.hpp>
#include <procpool/common/backtrace.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/common/exception_codec.hpp>
#include <procpool/common/function_registry.hpp>
#include <procpool/common/statm.hpp>

namespace procpool::detail {
namespace {

WorkerLives g_lives;
ControlBlock* g_control = nullptr;
bool g_allocation_failed = false;  // this worker's copy of ControlBlock::allocation_failed

// Installed only with a memory limit. operator new calls it when the
// allocator has nothing left: the mark tells the host, should the worker
// die of it (a bad_alloc in a noexcept function terminates), that the
// memory limit killed it. Throwing bad_alloc is what the default does.
void on_allocation_failure() {
  g_allocation_failed = true;
  g_control->allocation_failed.store(1, std::memory_order_relaxed);
  throw std::bad_alloc();
}

bool set_limit(int resource, std::optional<uint64_t> value) noexcept {
  if (!value) return true;
  rlimit limit{static_cast<rlim_t>(*value), static_cast<rlim_t>(*value)};
  return ::setrlimit(resource, &limit) == 0;
}

}  // namespace

WorkerLives& worker_lives() noexcept { return g_lives; }

const char* WorkerLives::start(const WorkerConfig& config, ControlBlock& control) noexcept {
  g_control = &control;
  const ResourceLimits& limits = config.limits;
  // Soft and hard alike: a task cannot raise them back.
  if (!set_limit(RLIMIT_AS, limits.memory)) return "setrlimit(RLIMIT_AS) for limits.memory";
  if (!set_limit(RLIMIT_NOFILE, limits.open_files)) return "setrlimit(RLIMIT_NOFILE) for limits.open_files";
  if (!set_limit(RLIMIT_FSIZE, limits.file_size)) return "setrlimit(RLIMIT_FSIZE) for limits.file_size";
  if (!set_limit(RLIMIT_NPROC, limits.processes)) return "setrlimit(RLIMIT_NPROC) for limits.processes";
  if (!set_limit(RLIMIT_CORE, limits.core_dumps)) return "setrlimit(RLIMIT_CORE) for limits.core_dumps";
  if (limits.memory) std::set_new_handler(on_allocation_failure);
  if (limits.cpu && limits.cpu->count() > 0) {
    rlimit cpu{};
    if (::getrlimit(RLIMIT_CPU, &cpu) != 0) return "getrlimit(RLIMIT_CPU) for limits.cpu";
    cpu_seconds_ = static_cast<uint64_t>(limits.cpu->count());
    cpu_hard_ = cpu.rlim_max == RLIM_INFINITY ? UINT64_MAX : static_cast<uint64_t>(cpu.rlim_max);
  }
  max_calls_ = config.max_calls;
  max_rss_ = config.max_rss;
  if (max_rss_ > 0) {
    // Opened here, after the inherited descriptors were closed; a task that
    // closes it only turns the check off (pread fails: no retirement).
    statm_fd_ = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (statm_fd_ < 0) return "open(/proc/self/statm) for max_worker_memory";
  }
  active_ = max_calls_ > 0 || max_rss_ > 0 || cpu_seconds_ > 0 || limits.memory.has_value();
  return nullptr;
}

void WorkerLives::run_initializer(const WorkerConfig& config, ControlBlock& control) noexcept {
  if (!config.initializer) return;
  control.initializing.store(1, std::memory_order_relaxed);
  try {
    InputArchive args(config.initializer->data(), config.initializer->size());
    uint32_t id = 0;
    uint64_t fp = 0;
    args(id, fp);
    const FunctionEntry* entry = FunctionRegistry::instance().at(id);
    if (!entry || entry->fingerprint != fp)
      throw Error("the initializer's function is not registered in the worker");  // the host encoded it: cannot be
    ByteBuffer result;                                                            // discarded
    OutputArchive out(result);
    entry->invoke(entry->fn, args, out);
  } catch (...) {
    ByteBuffer record;
    encode_current_exception(record, "", kStartupErrorBytes);
    size_t n = std::min(record.size(), kStartupErrorBytes);
    std::memcpy(control.startup_error, record.data(), n);
    control.startup_error_bytes.store(static_cast<uint32_t>(n), std::memory_order_relaxed);
    std::fflush(stdout);  // what it printed (not fflush(nullptr): other streams' buffers may be
    std::fflush(stderr);  // copies of the host's, its to write)
    _exit(kExitInitializerFailed);
  }
  control.initializing.store(0, std::memory_order_relaxed);
}

void WorkerLives::before_call() noexcept {
  if (g_allocation_failed) {
    g_allocation_failed = false;
    g_control->allocation_failed.store(0, std::memory_order_relaxed);
  }
  if (cpu_seconds_ == 0) return;
  // RLIMIT_CPU counts the process's whole life in seconds: the limit for
  // this call is what it has used, rounded up (never early), plus its own.
  rusage usage{};
  if (::getrusage(RUSAGE_SELF, &usage) != 0) return;
  uint64_t used_us = static_cast<uint64_t>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000000 +
                     static_cast<uint64_t>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
  uint64_t soft = std::min(cpu_hard_, (used_us + 999999) / 1000000 + cpu_seconds_);
  rlimit cpu{static_cast<rlim_t>(soft), cpu_hard_ == UINT64_MAX ? RLIM_INFINITY : static_cast<rlim_t>(cpu_hard_)};
  (void)::setrlimit(RLIMIT_CPU, &cpu);
}

int WorkerLives::after_call(uint64_t served) noexcept {
  if (max_calls_ > 0 && served >= max_calls_) return kExitServedItsCalls;
  if (max_rss_ > 0 && resident_bytes() > max_rss_) return kExitOverMemory;
  return 0;
}

uint64_t WorkerLives::resident_bytes() const noexcept { return statm_resident_bytes(statm_fd_); }

bool current_exception_is_bad_alloc() noexcept {
  try {
    throw;
  } catch (const std::bad_alloc&) {
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace procpool::detail
