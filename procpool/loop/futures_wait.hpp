// SPDX-License-Identifier: MIT
#pragma once
// concurrent.futures' wait and as_completed: they block the calling thread,
// where procpool::wait and procpool::as_completed (wait.hpp, asyncio's) are
// awaited in a procpool::Task. Neither blocks on the pool's own thread (a
// then() callback, a coroutine the pool resumed): that throws
// procpool::Error, as Future::get() does there, instead of deadlocking.
#include <chrono>
#include <cstddef>
#include <iterator>
#include <optional>
#include <vector>

#include <procpool/common/clock_time.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/loop/completion_queue.hpp>
#include <procpool/loop/future.hpp>
#include <procpool/loop/wait.hpp>

namespace procpool::futures {

using Clock = std::chrono::steady_clock;
// Named here too, as concurrent.futures names them beside its wait.
using procpool::ALL_COMPLETED;
using procpool::FIRST_COMPLETED;
using procpool::FIRST_EXCEPTION;
using procpool::ReturnWhen;
using procpool::WaitResult;

// Call these qualified (procpool::futures::wait): after `using namespace
// procpool::futures`, an unqualified wait(futures) is ambiguous with
// procpool::wait, asyncio's, which argument-dependent lookup finds through
// Future.

// concurrent.futures.wait(fs, timeout, return_when): blocks until `when`
// holds for `futures` or `timeout` has passed (no exception then), and
// splits them into done and pending, each in the order given. Cancels
// nothing. FIRST_EXCEPTION returns at the first future that failed with an
// exception, or when all are done: a cancelled future (TaskCancelled) is
// done, not an exception. With no futures it returns at once.
template <class T>
WaitResult<T> wait(std::vector<Future<T>> futures, ReturnWhen when = ALL_COMPLETED,
                   std::optional<Clock::duration> timeout = std::nullopt) {
  auto deadline = timeout ? detail::deadline_after(*timeout) : Clock::time_point::max();
  std::vector<std::shared_ptr<detail::StateBase>> states;
  for (auto& f : futures) states.push_back(f.shared_state());
  auto queue = detail::CompletionQueue::watch(states);
  for (size_t settled = 0; settled < states.size(); ++settled) {
    auto i = queue->take_until(deadline, "procpool::futures::wait");
    if (!i) break;
    const detail::StateBase& s = *states[*i];
    if (when == FIRST_COMPLETED || (when == FIRST_EXCEPTION && s.failed() && !s.cancelled())) break;
  }
  WaitResult<T> out;
  for (auto& f : futures) (f.ready() ? out.done : out.pending).push_back(std::move(f));
  return out;
}
// The same with a timeout of any length (hours::max() is no limit).
template <class T, class Rep, class Period>
WaitResult<T> wait(std::vector<Future<T>> futures, ReturnWhen when, std::chrono::duration<Rep, Period> timeout) {
  return futures::wait(std::move(futures), when, std::optional(detail::clock_duration(timeout)));
}

// concurrent.futures.as_completed(fs, timeout): the futures as they
// complete, the calling thread blocking for each:
//   for (procpool::Future<int> f : procpool::futures::as_completed(std::move(calls))) use(f.get());
// or next() until empty(). A future given more than once is yielded once.
// With a timeout (counted from here, for the whole iteration, as in
// Python), asking for a future once it has passed and none is ready throws
// procpool::TaskTimeout; the futures not yet yielded stay pending.
template <class T>
class as_completed {
 public:
  explicit as_completed(std::vector<Future<T>> futures, std::optional<Clock::duration> timeout = std::nullopt)
      : order_(std::move(futures)), deadline_(timeout ? detail::deadline_after(*timeout) : Clock::time_point::max()) {}
  template <class Rep, class Period>
  as_completed(std::vector<Future<T>> futures, std::chrono::duration<Rep, Period> timeout)
      : as_completed(std::move(futures), std::optional(detail::clock_duration(timeout))) {}

  bool empty() const noexcept { return order_.size() == 0; }
  size_t size() const noexcept { return order_.size(); }
  // Blocks until the next future completes, and returns it (ready).
  Future<T> next() {
    if (empty()) throw Error("futures::as_completed::next(): no futures left");
    auto f = order_.take_until(deadline_, "procpool::futures::as_completed");
    if (!f)
      throw TaskTimeout("as_completed: " + std::to_string(size()) + (size() == 1 ? " future was" : " futures were") +
                        " not done in time");
    return std::move(*f);
  }

  // One pass, as Python's iterator: each step blocks as next() does.
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Future<T>;
    using difference_type = std::ptrdiff_t;
    using pointer = Future<T>*;
    using reference = Future<T>&;
    iterator() = default;
    explicit iterator(as_completed* from) : from_(from) { step(); }
    Future<T>& operator*() { return *current_; }
    Future<T>* operator->() { return &*current_; }
    iterator& operator++() {
      step();
      return *this;
    }
    void operator++(int) { step(); }
    friend bool operator==(const iterator& a, const iterator& b) noexcept { return a.from_ == b.from_; }

   private:
    void step() {
      if (from_->empty()) {
        from_ = nullptr;
        current_.reset();
        return;
      }
      current_.emplace(from_->next());
    }
    as_completed* from_ = nullptr;
    std::optional<Future<T>> current_;
  };
  iterator begin() { return empty() ? iterator() : iterator(this); }
  iterator end() { return iterator(); }

 private:
  detail::CompletionOrder<Future<T>> order_;
  Clock::time_point deadline_;
};

}  // namespace procpool::futures
