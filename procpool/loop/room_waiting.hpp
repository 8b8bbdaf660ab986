// SPDX-License-Identifier: MIT
#pragma once
// Calls that wait for room under PoolOptions::max_pending without blocking
// their caller (run_in_executor, a map's chunks; ProcessPool's and
// MpiPool's): queued as Backpressure waiters, submitted by the thread that
// frees a place. And the future of a call refused before it was queued.
#include <exception>
#include <memory>
#include <type_traits>
#include <utility>

#include <procpool/common/errors.hpp>
#include <procpool/loop/backpressure.hpp>
#include <procpool/loop/future.hpp>
#include <procpool/loop/pool_map.hpp>

namespace procpool::detail {

template <class R>
Future<R> failed_future(std::exception_ptr error, std::shared_ptr<SharedState<R>> state = nullptr) {
  if (!state) state = std::make_shared<SharedState<R>>();
  state->settle_error(std::move(error));
  return Future<R>(std::move(state));
}

// Runs `go(core, state)` if the pool's core still exists, else fails
// `state` with PoolShutdown. A place granted (Reserved) is tied to the
// state first, so that whatever settles it (an unknown function, arguments
// that do not encode, a pool gone) gives the place back.
template <class R, class Core, class Go>
Future<R> submit_if_alive(const std::weak_ptr<Core>& core, const std::shared_ptr<Backpressure>& room,
                          Admission admission, std::shared_ptr<SharedState<R>> state, Go go) {
  if (!state) state = std::make_shared<SharedState<R>>();
  if (admission == Admission::Reserved) room->release_when_settled(*state);
  if (auto pool = core.lock()) {
    // Whatever go() throws settles the state, which gives the place back:
    // on a grant's thread nobody else could.
    try {
      return go(*pool, state);
    } catch (...) {
      state->settle_error(std::current_exception());
      return Future<R>(std::move(state));
    }
  }
  return failed_future<R>(std::make_exception_ptr(PoolShutdown("the pool was destroyed before the call was submitted")),
                          std::move(state));
}

// A submit that never blocks at max_pending: `send(admission, state)` runs
// now if `room` has a place (Reserved: the place is the call's) or the
// pool is shut down (Wait: it fails with PoolShutdown). Otherwise
// make_deferred() makes a submit that owns what it sends (a copy of the
// arguments), which runs later, on the thread that frees a place, in
// turn with the pool's other waiters. Either submit ties a Reserved place
// to the state itself.
template <class R, class Send, class MakeDeferred>
void send_when_room(Backpressure& room, std::shared_ptr<SharedState<R>> state, Send&& send,
                    MakeDeferred&& make_deferred) {
  using Outcome = Backpressure::Outcome;
  Outcome now = room.try_acquire();
  if (now != Outcome::Full) {
    send(now == Outcome::Admitted ? Admission::Reserved : Admission::Wait, std::move(state));
    return;
  }
  auto call = std::make_shared<decltype(make_deferred())>(make_deferred());  // std::function needs a copyable grant
  auto waiter = std::make_shared<Backpressure::Waiter>();
  waiter->grant = [call, state](bool admitted) { (*call)(admitted ? Admission::Reserved : Admission::Wait, state); };
  now = room.acquire_or_queue(waiter);
  if (now != Outcome::Full) (*call)(now == Outcome::Admitted ? Admission::Reserved : Admission::Wait, std::move(state));
}

// A map chunk's send_when_room: `send_with(encoder, admission, state)`
// sends with `encode` (which reads the caller's range) when there is room
// now, else later with own() (an encoder holding copies of the inputs).
template <class R, class SendWith, class Encode, class Own>
void send_chunk_when_room(Backpressure& room, std::shared_ptr<SharedState<R>> state, SendWith send_with, Encode& encode,
                          Own& own) {
  send_when_room(
      room, std::move(state), [&](Admission admission, auto s) { send_with(encode, admission, std::move(s)); },
      [&] {
        return [send_with, encoder = own()](Admission admission, auto s) mutable {
          send_with(encoder, admission, std::move(s));
        };
      });
}

// Whether a chunk whose own() gives `Owned` can wait for room (pool_map.hpp).
template <class Owned>
inline constexpr bool kChunkCanWait = !std::is_same_v<Owned, NoOwnedCopy>;

// The same for one call (EventLoop::run_in_executor): `submit` already
// owns its arguments. The Future is handed out at once; `watch(state)`
// gives the state its pool's poller first.
template <class R, class Watch, class Submit>
Future<R> submit_when_room(const std::shared_ptr<Backpressure>& room, Watch watch, Submit submit) {
  if (!room) return submit(Admission::Wait, nullptr);
  auto state = std::make_shared<SharedState<R>>();
  // Its poller now, before the Future leaves this thread: the submit that
  // a freed place triggers later runs on another thread, while the loop
  // may be reading the state's poller (co_await).
  watch(*state);
  send_when_room(*room, state, submit, [&] { return std::move(submit); });
  return Future<R>(std::move(state));
}

}  // namespace procpool::detail
