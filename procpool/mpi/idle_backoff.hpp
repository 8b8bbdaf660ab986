// SPDX-License-Identifier: MIT
#pragma once
// How long a thread that polls MPI waits when a pass found nothing to do.
// MPI gives no descriptor to sleep on, and its blocking calls spin a core
// (which the node's workers need), so the host's link thread and an agent
// poll. The wait grows with the time since the last activity (a sixteenth
// of it, from nothing up to 1 ms): a burst of calls is polled at once, a
// call that has run for t is noticed within about t/16 of its end (so
// polling adds some 6 % at most), and a quiet rank looks a thousand times a
// second. Below kYieldBelow the thread only yields: a timed sleep that
// short costs the timer slack (50 µs) anyway.
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace procpool::mpi::detail {

class IdleBackoff {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr auto kLongest = std::chrono::microseconds(1000);
  static constexpr auto kYieldBelow = std::chrono::microseconds(50);

  // Something happened: the next waits start short again.
  void active() noexcept { last_ = Clock::now(); }
  // How long to wait now; zero means yield and poll again.
  std::chrono::microseconds next_wait() const noexcept {
    auto idle = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - last_) / 16;
    if (idle < kYieldBelow) return std::chrono::microseconds(0);
    return idle < kLongest ? idle : std::chrono::microseconds(kLongest);
  }
  // Waits as next_wait() says, with nothing that could wake it early.
  void pause() const {
    auto wait = next_wait();
    if (wait.count() == 0) std::this_thread::yield();
    else std::this_thread::sleep_for(wait);
  }
  // Waits as next_wait() says, on `cv` under `mutex`: woken early by a
  // notify once `ready()` holds (what this thread's own threads hand it).
  template <class Ready>
  void pause(std::mutex& mutex, std::condition_variable& cv, Ready ready) const {
    auto wait = next_wait();
    if (wait.count() == 0) {
      std::this_thread::yield();
      return;
    }
    std::unique_lock lock(mutex);
    cv.wait_for(lock, wait, ready);
  }

 private:
  Clock::time_point last_ = Clock::now();
};

}  // namespace procpool::mpi::detail
