// SPDX-License-Identifier: MIT
#include "soak_tasks.hpp"

#include "fault_plan.hpp"

#include <unistd.h>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <thread>

#include <procpool/common/frame.hpp>
#include <procpool/common/worker_segment.hpp>
#include <procpool/worker/worker_loop.hpp>

#include "run_ledger.hpp"

namespace soak {
namespace {

// No UBSan here: the null store must reach the CPU and fault, in every build.
// The null pointer is read from a volatile: g++ with -fsanitize=thread
// dropped the store through a constant null (the call returned a value).
volatile std::uintptr_t g_null_address = 0;

__attribute__((no_sanitize("undefined"))) void segfault() { *reinterpret_cast<volatile int*>(g_null_address) = 1; }

// A hostile worker: 1 to 64 frames of shapes no worker may write, drawn
// from the call's id, into its own response ring (as many as fit), each
// published with the doorbell rung; then it waits to be killed. The host
// must fail the call with ProtocolError whichever frame it reads first.
[[noreturn]] void forge_frames(uint32_t id) {
  using namespace procpool::detail;
  WorkerSegment* segment = current_worker_segment();
  if (!segment) std::abort();  // not in a worker: the soak is broken
  ByteRing ring = segment->response_ring();
  TaskId running = segment->control().running_task.load();
  std::mt19937_64 rng(id);
  uint64_t frames = forged_frame_count(id);
  rng.discard(1);  // the draw forged_frame_count made
  for (uint64_t i = 0; i < frames; ++i) {
    FrameHeader h = make_frame_header(FrameKind::Value, running, 0);
    unsigned char body[32];
    for (auto& b : body) b = static_cast<unsigned char>(rng());
    size_t body_bytes = 0;
    switch (rng() % 6) {
      case 0:  // random bytes where a header belongs
        std::memcpy(&h, body, sizeof h);
        break;
      case 1:  // another call's answer
        h.task_id = running + 1 + rng() % 1000;
        break;
      case 2:  // a length no ring holds
        h.length = (uint64_t{1} << 40) + rng();
        break;
      case 3:  // a kind that is no answer
        h.kind = static_cast<uint16_t>(9 + rng() % 1000);
        break;
      case 4:  // an answer too short for its type (3 bytes of a uint64_t)
        h.length = 3;
        body_bytes = 3;
        break;
      default:  // a Dropped with no Part before it
        h.kind = static_cast<uint16_t>(FrameKind::Dropped);
        break;
    }
    if (ring.write_some(&h, sizeof h) < sizeof h) break;  // full: what is in it will do
    ring.write_some(body, body_bytes);
    ring.publish();
    ring_host_doorbell();
  }
  for (;;) ::pause();
}

void fill_pattern(uint32_t id, std::byte* out, uint64_t size) {
  for (uint64_t i = 0; i < size; ++i) out[i] = std::byte{pattern_byte(id, i)};
}

}  // namespace

uint64_t soak_fault(uint32_t id, int action, uint32_t sleep_ms) {
  note_run(id, action == static_cast<int>(Action::publish_and_sleep));
  switch (static_cast<Action>(action)) {
    case Action::give_value:
      break;
    case Action::throw_error:
      throw std::runtime_error("soak call " + std::to_string(id));
    case Action::segv:
      segfault();
      break;
    case Action::abort:
      std::abort();
    case Action::exit3:
      _exit(3);
    case Action::publish_and_sleep:
    case Action::sleep:
      std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
      break;
    case Action::forge_frames:
      forge_frames(id);
  }
  return expected_value(id);
}

std::string soak_text(uint32_t id, std::string payload) {
  note_run(id, false);
  if (!holds_pattern(id, payload.data(), payload.size()))
    throw std::logic_error("soak call " + std::to_string(id) + ": the text payload arrived damaged");
  return payload;
}

procpool::SharedBytes soak_shared(uint32_t id, procpool::SharedBytes payload) {
  note_run(id, false);
  if (!holds_pattern(id, payload.data(), payload.size()))
    throw std::logic_error("soak call " + std::to_string(id) + ": the SharedBytes payload arrived damaged");
  if (id % 2 == 1) return procpool::SharedBytes::copy_of(payload.bytes());
  return payload;
}

uint64_t soak_map_item(uint32_t id) {
  note_run(id, false);
  return expected_value(id);
}

std::string make_text(uint32_t id, uint64_t size) {
  std::string text(size, '\0');
  fill_pattern(id, reinterpret_cast<std::byte*>(text.data()), size);
  return text;
}

procpool::SharedBytes make_shared(uint32_t id, uint64_t size) {
  return procpool::SharedBytes::make(size, [&](std::span<std::byte> out) { fill_pattern(id, out.data(), out.size()); });
}

bool holds_pattern(uint32_t id, const void* bytes, uint64_t size) noexcept {
  const auto* b = static_cast<const unsigned char*>(bytes);
  for (uint64_t i = 0; i < size; ++i)
    if (b[i] != pattern_byte(id, i)) return false;
  return true;
}

}  // namespace soak

PROCPOOL_REGISTER_AS("soak_fault", soak::soak_fault);
PROCPOOL_REGISTER_AS("soak_text", soak::soak_text);
PROCPOOL_REGISTER_AS("soak_shared", soak::soak_shared);
PROCPOOL_REGISTER_AS("soak_map_item", soak::soak_map_item);
