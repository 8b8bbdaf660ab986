// SPDX-License-Identifier: MIT
#pragma once
// How many times each call id ran, counted by the workers themselves in a
// file both sides map: /tmp/procpool-soak-<host pid>.runs, made (and
// unlinked at the end) by the host, mapped by each worker on first use.
// The name needs nothing from the host's memory, so it works under every
// start method (every worker is the host's child: getppid() names it).
//
// Layout: one Slot per call id. `runs` is incremented (relaxed: the host
// reads it only after the worker is gone or has answered, both of which
// order it) by every start of the call; `pid` is stored by a call that
// publishes its worker so that the host can signal it.
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

namespace soak {

struct LedgerSlot {
  uint32_t runs;
  int32_t pid;
};
static_assert(sizeof(LedgerSlot) == 8);
static_assert(std::atomic_ref<uint32_t>::is_always_lock_free);

// The host's side: owns the file and its mapping.
class RunLedger {
 public:
  explicit RunLedger(size_t calls);  // throws std::system_error
  ~RunLedger();
  RunLedger(const RunLedger&) = delete;
  RunLedger& operator=(const RunLedger&) = delete;

  uint32_t runs(uint32_t id) const noexcept;
  pid_t pid(uint32_t id) const noexcept;
  size_t size() const noexcept { return calls_; }
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
  LedgerSlot* slots_ = nullptr;
  size_t calls_ = 0;
};

// The path for a host with this pid.
std::string ledger_path(pid_t host);

// The worker's side: counts a run of `id` (and stores getpid() if
// `publish_pid`). Maps the host's file on first use; throws
// std::runtime_error if it cannot or `id` is out of its range.
void note_run(uint32_t id, bool publish_pid);

}  // namespace soak
