// SPDX-License-Identifier: MIT
#pragma once
// The shared-memory segment of one worker: a control block and two rings.
//
//   offset 0                 ControlBlock (worker writes, host reads),
//                            CancelList, StopRequest (host writes, worker reads)
//   sizeof(SegmentHeader)    request ring data  (host -> worker), capacity C
//   ... + C                  response ring data (worker -> host), capacity C
//
// The segment is mapped by Boost.Interprocess, from one of two memories
// (SegmentMemory), neither with a name: no crash and no shutdown path can
// leave anything behind in /dev/shm, so there is nothing to sweep.
#include <boost/interprocess/anonymous_shared_memory.hpp>
#include <boost/interprocess/mapped_region.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include <procpool/common/errno_text.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/common/unique_fd.hpp>

#include <procpool/common/backtrace.hpp>
#include <procpool/common/byte_ring.hpp>
#include <procpool/common/frame.hpp>

namespace procpool::detail {

inline constexpr int kMaxCrashFrames = 48;
// Room for the exception a worker's initializer threw (an exception_codec
// record, cut to fit).
inline constexpr size_t kStartupErrorBytes = 2048;

// Written only by the worker; the host reads it after the worker died (its
// death, seen through the pidfd, orders these writes before the reads), or
// as a hint while it lives. Nothing here is trusted beyond a range check.
struct ControlBlock {
  // Number of Call frames the worker has begun to run. Stored (release)
  // after the call's header is read and before its arguments are decoded
  // (a large call's arrive while they are), so a task counted here may have
  // run (never re-dispatched) and one not counted never ran (safe to
  // re-dispatch after a crash).
  alignas(kCacheLine) std::atomic<uint64_t> started{0};
  std::atomic<TaskId> running_task{0};
  // The worker's recent time per call in ns (0: not measured yet): from
  // one call's start to the next's, counted only when the next was already
  // waiting, so idle time is never in it. It rises at once to a slower call
  // and falls by an eighth of the gap per faster one. Stored relaxed by the
  // worker; read relaxed by the host's dispatch as a hint of how many calls
  // to hand it ahead (dispatch.cpp): a stale or forged value only changes
  // that count, within its bounds. On the line the worker already writes at
  // every call.
  std::atomic<uint32_t> call_ns{0};
  // When the worker began its latest call: steady_clock nanoseconds
  // (CLOCK_MONOTONIC, one clock for every process of the machine; no
  // sandbox enters a time namespace), 0 before its first. Stored relaxed
  // before `started`'s release, so a host that reads `started` (acquire)
  // and then this reads the time of that call or a later one. A hint for
  // work stealing (loop/work_stealing.cpp): how long the call at the front
  // of the worker's queue has run. A forged value only moves that worker's
  // own queued calls sooner or later; the host bounds the wait it derives.
  std::atomic<uint64_t> call_began_ns{0};
  // The fatal signal and the return addresses the crash handler captured
  // before it re-raised (the signal is the fallback when the exit status
  // cannot be had: an application that ignores SIGCHLD or reaps for itself).
  std::atomic<int> crash_signal{0};
  std::atomic<uint32_t> crash_frame_count{0};
  void* crash_frames[kMaxCrashFrames];
  // Where the worker's modules are loaded, noted once as it starts (before
  // `ready`), so that the host can move crash_frames to its own layout
  // (symbolize_crash). Read only after the worker died, as the frames are.
  std::atomic<uint32_t> crash_module_count{0};
  LoadedModule crash_modules[kMaxLoadedModules];
  // Why the worker could not start (it then exits with kExitSetupFailed).
  char setup_error[256];
  // Stored 1 (release) once set-up is done and the worker has allocated
  // memory once, before it reads its first call. A worker that does not
  // say so within PoolOptions::start_timeout is killed and replaced: a fork
  // taken while another host thread held a lock the child needs (the
  // allocator's, under a sanitizer) blocks the child for ever.
  std::atomic<uint32_t> ready{0};

  // ---- Workers' lives (worker/worker_lives.cpp writes, loop/worker_lives.cpp
  // reads). The host reads these only after it has reaped the worker: the
  // exit and the reaping wait order every store of the dead process before
  // the reads, so relaxed stores and loads suffice; a live worker's values
  // are never read. Like the rest of the block, range-checked, not trusted.
  //
  // 1 while the initializer runs: a death then (a signal, an exit) is the
  // initializer's, and the host says so.
  std::atomic<uint32_t> initializing{0};
  // Set by the worker's new_handler (only with ResourceLimits::memory) when
  // an allocation failed during the current call, cleared at the next call:
  // a worker that dies meanwhile died of the memory limit.
  std::atomic<uint32_t> allocation_failed{0};
  // The exception the initializer threw, as an exception_codec record of
  // startup_error_bytes bytes (at most kStartupErrorBytes), written before
  // the worker exits with kExitInitializerFailed.
  std::atomic<uint32_t> startup_error_bytes{0};
  char startup_error[kStartupErrorBytes];

  // ---- Sandbox (worker/crash_handler.cpp writes, loop/worker_supervision.cpp
  // reads). The syscall a seccomp filter trapped (SIGSYS with si_code
  // SYS_SECCOMP): its number and its AUDIT_ARCH_* architecture, stored by
  // the SIGSYS handler before it re-raises the signal. Read only after the
  // host has reaped the worker (as above: relaxed suffices). violation_arch
  // 0 means none was recorded: a task that blocked SIGSYS dies by the
  // kernel's forced signal without the handler, and the host says the
  // syscall is unknown. A task can forge both; the host only names what it
  // reads, range-checked by libseccomp's lookup.
  std::atomic<int32_t> violation_syscall{0};
  std::atomic<uint32_t> violation_arch{0};

  // ---- PID namespace (sandbox/pid_namespace.cpp writes). The pid, in the
  // host's namespace, of the process that serves (the keeper's grandchild),
  // 0 without a PID namespace. Read by the host for statistics (resident
  // bytes) while the worker lives: relaxed, as a stale 0 only means the
  // keeper's own figure. Never trusted for a signal: the worker can write it.
  std::atomic<int32_t> serving_pid{0};
};

// As many as a worker may hold calls (PoolCore::kPacedPrefetchMost), so
// that every call queued in its ring can be withdrawn at once.
inline constexpr uint32_t kCancelSlots = 256;

// Calls the host withdrew after handing them to this worker (host writes,
// worker reads). The host stores a task id in slot (count % kCancelSlots),
// then count (release); before starting a call the worker looks for its id
// among the last kCancelSlots entries (acquire on count; it keeps a copy of
// the entries it read: worker/withdrawn_calls.hpp). A withdrawal that
// arrives after the worker's look is too late: the call runs. One older than
// the last kCancelSlots is forgotten: the call runs. The host appends only
// where it can prove the worker's look comes after the entry, and keeps
// each entry among the last kCancelSlots until its call is answered: the
// protocol, and the fences it relies on, is at the top of loop/cancel.cpp.
struct CancelList {
  alignas(kCacheLine) std::atomic<uint32_t> count{0};
  std::atomic<TaskId> ids[kCancelSlots];
};

// The host asks the worker to stop (host writes, worker reads): its front
// call ran past its deadline or was cancelled while it ran. The host
// stores 1, runs a seq_cst fence and checks that no byte of that call's
// answer is in the ring, before any signal (loop/deadlines.cpp has the
// proof). The worker looks (acquire) after publishing each answer, before
// it begins the next call, and exits instead: the calls behind the stopped
// one never begin, even if SIGKILL lands after the call has ended, or a
// task survives SIGTERM and returns. A task may poll it
// (procpool::this_call::stop_requested()) to end early within stop_grace.
struct StopRequest {
  alignas(kCacheLine) std::atomic<uint32_t> requested{0};
};

// The CPU the host thread that last wrote a call into the ring ran on
// (host writes, relaxed, and only when it changed; worker reads, relaxed).
// A hint for the worker's spin (worker_loop.cpp): with its CPU contended,
// it spins on without yielding only while the host is on another CPU, where
// the spin cannot keep it off its own. Stale after a migration: then one
// spin (PoolOptions::worker_spin) either keeps the host waiting or ends
// early, nothing more. -1 until the host writes.
struct HostCpu {
  alignas(kCacheLine) std::atomic<int32_t> cpu{-1};
};

struct SegmentHeader {
  ControlBlock control;
  CancelList cancelled;
  StopRequest stop;
  HostCpu host_cpu;
  RingHeader request;
  RingHeader response;
};
static_assert(std::is_standard_layout_v<SegmentHeader>);
static_assert(sizeof(SegmentHeader) % kCacheLine == 0);

enum class SegmentMemory {
  // MAP_SHARED | MAP_ANONYMOUS, inherited by a worker the host forks.
  anonymous,
  // A memfd, for a worker that is not the host's fork (StartMethod::
  // forkserver, spawn): passed to it over a socket, mapped, closed. Sealed
  // against shrinking and growing before it leaves the host: a worker
  // that truncated it would make the host's next read of the segment a
  // SIGBUS.
  memfd,
};

class WorkerSegment {
 public:
  static size_t bytes_for(size_t ring_capacity) noexcept { return sizeof(SegmentHeader) + 2 * ring_capacity; }

  // The host's side. ring_capacity must be a power of two. Throws
  // procpool::Error naming the syscall that failed.
  explicit WorkerSegment(size_t ring_capacity, SegmentMemory memory = SegmentMemory::anonymous)
      : capacity_(ring_capacity) {
    if (memory == SegmentMemory::anonymous) {
      try {
        region_ = boost::interprocess::anonymous_shared_memory(bytes_for(ring_capacity));
      } catch (const boost::interprocess::interprocess_exception& e) {
        throw Error(std::string("cannot make a worker's shared memory: mmap of ") +
                    std::to_string(bytes_for(ring_capacity)) + " bytes: " + e.what());
      }
    } else {
      memfd_.reset(::memfd_create("procpool-segment", MFD_CLOEXEC | MFD_ALLOW_SEALING));
      if (!memfd_) fail("memfd_create");
      if (::ftruncate(memfd_.get(), static_cast<off_t>(bytes_for(ring_capacity))) != 0) fail("ftruncate");
      if (::fcntl(memfd_.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
        fail("fcntl(F_ADD_SEALS)");
      map_memfd();
    }
    new (region_.get_address()) SegmentHeader();
    inherit_on_fork(false);
  }
  // A worker's side of a memfd segment it was sent: maps it (it must be
  // the size the capacity implies) and closes the descriptor.
  struct Attach {};
  WorkerSegment(Attach, int memfd, size_t ring_capacity) : memfd_(memfd), capacity_(ring_capacity) {
    struct stat st {};
    if (::fstat(memfd_.get(), &st) != 0) fail("fstat");
    if (static_cast<uint64_t>(st.st_size) != bytes_for(ring_capacity))
      throw Error("the worker's segment is " + std::to_string(st.st_size) + " bytes, not " +
                  std::to_string(bytes_for(ring_capacity)));
    map_memfd();
    memfd_.reset();
  }
  size_t capacity() const noexcept { return capacity_; }
  // A memfd segment's descriptor, until drop_memfd(); -1 for anonymous.
  int memfd() const noexcept { return memfd_.get(); }
  // Once the worker holds its own copy: the mapping stays.
  void drop_memfd() noexcept { memfd_.reset(); }
  // Segments are not inherited by fork, but for the one being forked: a
  // worker must not map its siblings' rings, where it could forge their
  // answers. Returns false (errno set) if madvise fails.
  bool inherit_on_fork(bool inherit) noexcept {
    return ::madvise(region_.get_address(), region_.get_size(), inherit ? MADV_DOFORK : MADV_DONTFORK) == 0;
  }
  SegmentHeader& header() noexcept { return *static_cast<SegmentHeader*>(region_.get_address()); }
  ControlBlock& control() noexcept { return header().control; }
  ByteRing request_ring() noexcept { return ByteRing(&header().request, data(0), capacity_); }
  ByteRing response_ring() noexcept { return ByteRing(&header().response, data(capacity_), capacity_); }

 private:
  std::byte* data(size_t offset) noexcept {
    return static_cast<std::byte*>(region_.get_address()) + sizeof(SegmentHeader) + offset;
  }
  // What mapped_region needs of a memory-mappable object: a descriptor.
  struct MappableFd {
    int fd;
    boost::interprocess::mapping_handle_t get_mapping_handle() const noexcept { return {fd, false}; }
  };
  void map_memfd() {
    region_ = boost::interprocess::mapped_region(MappableFd{memfd_.get()}, boost::interprocess::read_write, 0,
                                                 bytes_for(capacity_));
  }
  [[noreturn]] static void fail(const char* syscall) {
    throw Error(std::string("cannot make a worker's shared memory: ") + syscall + ": " + detail::errno_text(errno));
  }

  UniqueFd memfd_;
  boost::interprocess::mapped_region region_;
  size_t capacity_;
};

}  // namespace procpool::detail
