// SPDX-License-Identifier: MIT
#include "call_maker.hpp"

#include <csignal>
#include <numeric>
#include <vector>

#include "call_book.hpp"
#include "outside_hand.hpp"
#include "soak_tasks.hpp"

namespace soak {

using procpool::Future;

int action_for(Kind kind) noexcept {
  switch (kind) {
    case Kind::throws:
      return static_cast<int>(Action::throw_error);
    case Kind::segv:
      return static_cast<int>(Action::segv);
    case Kind::abort:
      return static_cast<int>(Action::abort);
    case Kind::exit3:
      return static_cast<int>(Action::exit3);
    case Kind::sigkill:
    case Kind::sigstop:
    case Kind::cancel_running:
      return static_cast<int>(Action::publish_and_sleep);
    case Kind::deadline:
      return static_cast<int>(Action::sleep);
    case Kind::forged_frames:
      return static_cast<int>(Action::forge_frames);
    default:
      return static_cast<int>(Action::give_value);
  }
}

// Long enough that only the fault ends it: a call that outlives it is a
// signal, deadline or cancel that did not work.
uint32_t sleep_ms_for(Kind kind) noexcept {
  int action = action_for(kind);
  return action == static_cast<int>(Action::publish_and_sleep) || action == static_cast<int>(Action::sleep) ? 10'000
                                                                                                            : 0;
}

procpool::CallOptions options_for(const Draw& draw) noexcept {
  procpool::CallOptions options;
  if (draw.timeout_ms) options.timeout = std::chrono::milliseconds(draw.timeout_ms);
  return options;
}

void CallMaker::after_submit(Kind kind, uint32_t id, Future<uint64_t> future) {
  switch (kind) {
    case Kind::sigkill:
    case Kind::sigstop:
      hand_.signal_when_running(id, kind == Kind::sigkill ? SIGKILL : SIGSTOP, [future] { return future.ready(); });
      break;
    case Kind::cancel_running:
      hand_.cancel_when_running(
          id, [future] { return future.ready(); }, [future]() mutable { return future.cancel(); });
      break;
    case Kind::cancel_queued:
      book_.note_cancel(id, future.cancel());
      break;
    default:
      break;
  }
}

void CallMaker::make(const Draw& draw, uint32_t id, std::function<void()> settled) {
  if (draw.kind == Kind::map_item) return make_map(draw, id, std::move(settled));
  book_.issue(id, draw.kind);
  if (draw.kind == Kind::text_payload)
    return echo(soak_text, id, make_text(id, draw.payload), "the echoed text differs", std::move(settled));
  if (draw.kind == Kind::shared_payload)
    return echo(soak_shared, id, make_shared(id, draw.payload), "the SharedBytes given back differ",
                std::move(settled));
  Future<uint64_t> future =
      pool_.submit_with(options_for(draw), soak_fault, id, action_for(draw.kind), sleep_ms_for(draw.kind));
  future.then([this, id, settled](Future<uint64_t> f) {
    auto error = f.error_if_failed();
    bool ok = !error && f.get() == expected_value(id);
    book_.settle(id, error, ok);
    settled();
  });
  after_submit(draw.kind, id, std::move(future));
}

template <class Payload>
void CallMaker::echo(Payload (*task)(uint32_t, Payload), uint32_t id, Payload payload, const char* note,
                     std::function<void()> settled) {
  uint64_t size = payload.size();
  pool_.submit(task, id, std::move(payload)).then([this, id, size, note, settled](Future<Payload> f) {
    auto error = f.error_if_failed();
    bool ok = false;
    if (!error) {
      Payload back = f.get();
      ok = back.size() == size && holds_pattern(id, back.data(), back.size());
    }
    book_.settle(id, error, ok, note);
    settled();
  });
}

void CallMaker::make_map(const Draw& draw, uint32_t id, std::function<void()> settled) {
  std::vector<uint32_t> inputs(draw.ids);
  std::iota(inputs.begin(), inputs.end(), id);
  for (uint32_t input : inputs) book_.issue(input, Kind::map_item);
  pool_.map(soak_map_item, inputs, draw.chunksize).then([this, inputs, settled](Future<std::vector<uint64_t>> f) {
    auto error = f.error_if_failed();
    std::vector<uint64_t> values;
    if (!error) values = f.get();
    for (size_t i = 0; i < inputs.size(); ++i) {
      bool ok = !error && values.size() == inputs.size() && values[i] == expected_value(inputs[i]);
      book_.settle(inputs[i], error, ok,
                   ok ? std::string() : "map result " + std::to_string(i) + " of " + std::to_string(values.size()));
    }
    settled();
  });
}

Future<uint64_t> CallMaker::make_in_loop(procpool::EventLoop& loop, const Draw& draw, uint32_t id) {
  book_.issue(id, draw.kind);
  Future<uint64_t> future = loop.run_in_executor_with(options_for(draw), pool_, soak_fault, id, action_for(draw.kind),
                                                      sleep_ms_for(draw.kind));
  future.then([this, id](Future<uint64_t> f) { book_.settle(id, f.error_if_failed(), true); });
  after_submit(draw.kind, id, future);
  return future;
}

}  // namespace soak
