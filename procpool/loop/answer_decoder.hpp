// SPDX-License-Identifier: MIT
#pragma once
// What the payload of a worker's answer means for the call it answers: a
// value loaded into the call's state, the exception it threw (its records
// decoded), TaskCancelled for a Skipped call, or a malformed answer, which
// fails the call with ProtocolError and condemns the worker. Kept apart from
// the pool's state so that fuzz/fuzz_response_reader.cpp runs this very
// code on the answers it forges.
#include <sys/types.h>

#include <exception>
#include <optional>
#include <span>
#include <string>

#include <procpool/common/archive.hpp>
#include <procpool/common/frame.hpp>
#include <procpool/loop/future_state.hpp>

namespace procpool::detail {

struct AnswerVerdict {
  std::exception_ptr outcome;  // the call fails with this
  std::string malformed;       // non-empty: the worker broke the protocol, and how ("it wrote " + this)
  std::optional<UsageTrailer> usage;
};

// Before the call's state is claimed (may throw, out of memory): applies the
// rules a Skipped answer must follow and takes a measured call's
// UsageTrailer off the end of the payload (`payload` then `rest`).
void check_answer(const FrameHeader& header, bool withdrawn, bool measured, std::span<const std::byte>& payload,
                  std::span<const std::byte>& rest, AnswerVerdict& verdict);

// After a successful state.try_claim(): decodes the answer into `state` (a
// Value) or its exception records into the outcome (an Exception), unless
// the verdict already has one; then fails the state with the outcome (a
// malformed answer's is ProtocolError naming `function` and `pid`) and
// gives it the usage. Throws only where the host is out of memory.
void decode_answer(StateBase& state, const FrameHeader& header, std::span<const std::byte> payload,
                   std::span<const std::byte> rest, const HandleList* handles, const char* function, pid_t pid,
                   AnswerVerdict& verdict);

}  // namespace procpool::detail
