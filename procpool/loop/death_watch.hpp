// SPDX-License-Identifier: MIT
#pragma once
// Whether a completed wait on a worker's pidfd is its death.
//
// A wait for readability can complete with the worker alive: Boost.Asio
// 1.74's epoll reactor, when a handler closes descriptors whose readiness
// it has already queued, gives their freed state, readiness and all, to
// the next descriptors registered. A dead worker's output pipes, closed by
// its death handler, so woke the death handler of a worker forked just
// after: the host killed that live worker and failed its call with a
// SIGKILL nobody sent (the soak under fork, about once in 10^5 to 10^6
// calls; AsioInterop.AWakeTheReactorQueuedForAClosed...). So a death
// handler first polls the pidfd (has_exited) and, the worker alive, arms
// the wait again. The reactor is edge-triggered and completes a wait only
// on an edge that comes after it: should the worker die while the wait is
// re-armed, and another thread running the io_context take that edge
// first, the wait would never complete. Hence the second poll, after the
// re-arm: a death found then is handled at once, and the re-armed wait
// cancelled (its handler sees operation_aborted).
#include <boost/asio/posix/stream_descriptor.hpp>

#include <procpool/worker/pidfd.hpp>

namespace procpool::detail {

// True: the process behind `pidfd` has exited, handle its death now.
// False: it lives, and `rearm()` has armed the wait on `pidfd` again.
template <class Rearm>
bool confirm_death(boost::asio::posix::stream_descriptor& pidfd, Rearm&& rearm) {
  if (has_exited(pidfd.native_handle())) return true;
  rearm();
  if (!has_exited(pidfd.native_handle())) return false;
  boost::system::error_code ignored;
  pidfd.cancel(ignored);
  return true;
}

}  // namespace procpool::detail
