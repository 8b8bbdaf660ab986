// SPDX-License-Identifier: MIT
#include "soak_tasks.hpp"

#include <unistd.h>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "run_ledger.hpp"

namespace soak {
namespace {

// No UBSan here: the null store must reach the CPU and fault, in every build.
__attribute__((no_sanitize("undefined"))) void segfault() {
  volatile int* p = nullptr;
  *p = 1;
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
