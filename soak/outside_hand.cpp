// SPDX-License-Identifier: MIT
#include "outside_hand.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <csignal>

#include "call_book.hpp"
#include "run_ledger.hpp"

namespace soak {

OutsideHand::OutsideHand(const RunLedger& ledger, CallBook& book)
    : ledger_(ledger), book_(book), thread_([this] { run(); }) {}

OutsideHand::~OutsideHand() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void OutsideHand::signal_when_running(uint32_t id, int signal, std::function<bool()> ready) {
  {
    std::lock_guard lock(mutex_);
    targets_.push_back({id, signal, std::move(ready), {}});
  }
  wake_.notify_all();
}

void OutsideHand::cancel_when_running(uint32_t id, std::function<bool()> ready, std::function<bool()> cancel) {
  {
    std::lock_guard lock(mutex_);
    targets_.push_back({id, 0, std::move(ready), std::move(cancel)});
  }
  wake_.notify_all();
}

bool OutsideHand::act(Target& target) {
  if (target.ready()) return true;  // settled otherwise (a shutdown's cancel_futures)
  pid_t pid = ledger_.pid(target.id);
  if (pid == 0) return false;  // not begun yet
  if (target.signal == 0) {
    book_.note_cancel(target.id, target.cancel());
    cancels_made_.fetch_add(1);
    return true;
  }
  // The pid cannot be reused before the pool reaps its worker, which it does
  // only after the call has settled: so open first, then check unsettled.
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return true;  // gone already: then it has settled
  if (!target.ready() && ::syscall(SYS_pidfd_send_signal, pidfd, target.signal, nullptr, 0) == 0)
    (target.signal == SIGKILL ? kills_sent_ : stops_sent_).fetch_add(1);
  ::close(pidfd);
  return true;
}

void OutsideHand::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_ || !targets_.empty()) {
    if (targets_.empty()) {
      wake_.wait(lock, [this] { return stopping_ || !targets_.empty(); });
      continue;
    }
    std::vector<Target> now;
    now.swap(targets_);
    lock.unlock();
    std::vector<Target> left;
    for (Target& t : now)
      if (!act(t)) left.push_back(std::move(t));
    std::this_thread::sleep_for(std::chrono::microseconds(500));
    lock.lock();
    for (Target& t : left) targets_.push_back(std::move(t));
  }
}

}  // namespace soak
