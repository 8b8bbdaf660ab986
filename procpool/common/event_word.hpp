// SPDX-License-Identifier: MIT
#pragma once
// An event-count word for sleeping on a shared-memory condition without a
// lock, shared between processes.
//
// The 32-bit word, also the futex word:
//   bit 0      SLEEPER: the waiting side has announced that it is about to
//              block (or asked for a doorbell) and must be woken.
//   bits 1-31  epoch: bumped by every wake, so a wake between "announce" and
//              "block" changes the value and futex_wait returns at once.
// Only the waiting side sets bit 0 (fetch_or); only the notifying side clears
// it (a CAS odd -> odd+1, which clears the bit and carries into the epoch).
//
// Why no wake-up is lost (Dekker with seq_cst on both sides):
//   waiter:   word.fetch_or(SLEEPER, seq_cst); re-check condition; futex_wait
//   notifier: publish (release store); fence(seq_cst); word.load() & SLEEPER?
// Either the waiter's re-check sees the publication, or the notifier's load
// sees the bit. A separate "waiting" flag beside the futex word would let the
// notifier clear and wake between the waiter's check and its futex_wait.
#include <atomic>
#include <cstdint>
#include <ctime>

namespace procpool::detail {

inline constexpr uint32_t kSleeperBit = 1;

// Waiter side: announce; returns the value to pass to futex_wait.
inline uint32_t announce_sleep(std::atomic<uint32_t>& word) noexcept {
  uint32_t seen = word.fetch_or(kSleeperBit, std::memory_order_seq_cst) | kSleeperBit;
  // Orders the caller's re-check of its condition (often only an acquire
  // load) after the announcement, as the notifier's fence does on its side.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return seen;
}

// Waiter side: the condition became true after all; withdraw the request so
// the notifier does not pay for a wake-up nobody needs.
inline void withdraw_sleep(std::atomic<uint32_t>& word) noexcept {
  word.fetch_and(~kSleeperBit, std::memory_order_relaxed);
}

// Notifier side, after its release store and a seq_cst fence: true when a
// sleeper must be woken (the bit is cleared here, exactly once per sleep).
inline bool take_sleeper(std::atomic<uint32_t>& word) noexcept {
  uint32_t w = word.load(std::memory_order_relaxed);
  while (w & kSleeperBit) {
    if (word.compare_exchange_weak(w, w + 1, std::memory_order_relaxed)) return true;
  }
  return false;
}

// Cross-process futex calls (no FUTEX_PRIVATE_FLAG: the word is in a
// MAP_SHARED mapping). futex_wait returns on wake, value mismatch, signal or
// timeout; callers always re-check their condition.
void futex_wait(std::atomic<uint32_t>& word, uint32_t expected, const timespec* relative_timeout) noexcept;
void futex_wake_all(std::atomic<uint32_t>& word) noexcept;
// The same for a word only this process uses (FUTEX_PRIVATE_FLAG: the kernel
// skips the shared-mapping lookup).
void futex_wait_private(std::atomic<uint32_t>& word, uint32_t expected, const timespec* relative_timeout) noexcept;
void futex_wake_all_private(std::atomic<uint32_t>& word) noexcept;

// Waiter side, whole: sleeps on `word` (cross-process) until ready(), which
// is checked after every announcement. True if it slept at least once.
template <class Ready>
bool sleep_until(std::atomic<uint32_t>& word, Ready ready) {
  bool slept = false;
  while (!ready()) {
    uint32_t seen = announce_sleep(word);
    if (ready()) {
      withdraw_sleep(word);
      break;
    }
    futex_wait(word, seen, nullptr);
    slept = true;
  }
  return slept;
}

}  // namespace procpool::detail
