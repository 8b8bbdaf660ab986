// SPDX-License-Identifier: MIT
#pragma once
// The soak's registered functions. Each counts its run in the ledger first.
#include <cstdint>
#include <string>

#include <procpool/procpool.hpp>

#include "fault_plan.hpp"

namespace soak {

// Does `action` (an Action) for call `id`; returns expected_value(id).
uint64_t soak_fault(uint32_t id, int action, uint32_t sleep_ms);
// Checks the payload's pattern and echoes it.
std::string soak_text(uint32_t id, std::string payload);
// Checks the payload's pattern; gives it back, or a fresh copy for odd ids.
procpool::SharedBytes soak_shared(uint32_t id, procpool::SharedBytes payload);
// One map input.
uint64_t soak_map_item(uint32_t id);

// The payload for id, and whether `bytes` is it.
std::string make_text(uint32_t id, uint64_t size);
procpool::SharedBytes make_shared(uint32_t id, uint64_t size);
bool holds_pattern(uint32_t id, const void* bytes, uint64_t size) noexcept;

}  // namespace soak
