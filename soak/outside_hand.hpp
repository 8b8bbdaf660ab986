// SPDX-License-Identifier: MIT
#pragma once
// The hand from outside: a thread that waits until a call has begun (its
// task published its worker's pid in the ledger), then sends that worker a
// signal (SIGKILL, SIGSTOP) or cancels the call's future. A pidfd opened
// before the check that the call is still unsettled makes the signal reach
// the worker that ran it, never a process that reused its pid.
#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace soak {

class CallBook;
class RunLedger;

class OutsideHand {
 public:
  OutsideHand(const RunLedger& ledger, CallBook& book);
  ~OutsideHand();
  OutsideHand(const OutsideHand&) = delete;
  OutsideHand& operator=(const OutsideHand&) = delete;

  // `ready` says whether the call's future has settled; `cancel` cancels it.
  void signal_when_running(uint32_t id, int signal, std::function<bool()> ready);
  void cancel_when_running(uint32_t id, std::function<bool()> ready, std::function<bool()> cancel);

  uint64_t kills_sent() const noexcept { return kills_sent_.load(); }
  uint64_t stops_sent() const noexcept { return stops_sent_.load(); }
  uint64_t cancels_made() const noexcept { return cancels_made_.load(); }

 private:
  struct Target {
    uint32_t id;
    int signal;  // 0: cancel
    std::function<bool()> ready;
    std::function<bool()> cancel;
  };
  void run();
  bool act(Target& target);  // true once done with it

  const RunLedger& ledger_;
  CallBook& book_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Target> targets_;
  bool stopping_ = false;
  std::atomic<uint64_t> kills_sent_{0}, stops_sent_{0}, cancels_made_{0};
  std::thread thread_;
};

}  // namespace soak
