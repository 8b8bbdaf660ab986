// SPDX-License-Identifier: MIT
#include <procpool/common/event_word.hpp>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>

namespace procpool::detail {

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "a futex word is exactly 32 bits");
static_assert(std::atomic<uint32_t>::is_always_lock_free);

void futex_wait(std::atomic<uint32_t>& word, uint32_t expected, const timespec* relative_timeout) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT, expected, relative_timeout, nullptr, 0);
}

void futex_wake_all(std::atomic<uint32_t>& word) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

void futex_wait_private(std::atomic<uint32_t>& word, uint32_t expected, const timespec* relative_timeout) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected, relative_timeout, nullptr, 0);
}

void futex_wake_all_private(std::atomic<uint32_t>& word) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

}  // namespace procpool::detail
