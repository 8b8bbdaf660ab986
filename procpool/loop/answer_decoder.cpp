// SPDX-License-Identifier: MIT
#include <procpool/loop/answer_decoder.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include <procpool/common/errors.hpp>
#include <procpool/common/exception_codec.hpp>

namespace procpool::detail {
namespace {

// Takes the UsageTrailer off the end of an answer held in two pieces.
bool peel_trailer(std::span<const std::byte>& payload, std::span<const std::byte>& rest, UsageTrailer& trailer) {
  constexpr size_t n = sizeof(UsageTrailer);
  if (payload.size() + rest.size() < n) return false;
  std::byte bytes[n];
  size_t from_rest = std::min(rest.size(), n), from_payload = n - from_rest;
  // No memcpy of 0 bytes: an answer reassembled from parts has an empty
  // `rest` whose data() is null, and memcpy from null is undefined even for
  // 0 bytes (found by fuzz_response_reader: every measured call whose
  // answer came in parts).
  if (from_payload > 0) std::memcpy(bytes, payload.data() + payload.size() - from_payload, from_payload);
  if (from_rest > 0) std::memcpy(bytes + from_payload, rest.data() + rest.size() - from_rest, from_rest);
  payload = payload.first(payload.size() - from_payload);
  rest = rest.first(rest.size() - from_rest);
  std::memcpy(&trailer, bytes, n);
  return true;
}

// Loads a result into `state`. The archive's bounds checks (DecodeError)
// and cereal's own format checks (cereal::Exception) mean the worker's bytes
// are malformed: they propagate, and condemn it. Anything else was thrown
// by the result type's own load(): the value is one it refuses, which is
// no fault of the worker; the call fails with SerializationError.
std::exception_ptr load_value(StateBase& state, InputArchive& in, const std::string& function, pid_t pid) {
  std::string why;
  try {
    state.load_value(in, AnswerSource{function, pid});
    return nullptr;
  } catch (const DecodeError&) {
    throw;
  } catch (const cereal::Exception&) {
    throw;
  } catch (const std::exception& e) {
    why = e.what();
  } catch (...) {
    why = "a non-standard exception";
  }
  return std::make_exception_ptr(SerializationError(function, "the result's load() refused it: " + why));
}

}  // namespace

void check_answer(const FrameHeader& header, bool withdrawn, bool measured, std::span<const std::byte>& payload,
                  std::span<const std::byte>& rest, AnswerVerdict& verdict) {
  bool skipped = header.kind == static_cast<uint32_t>(FrameKind::Skipped);
  if (skipped) {
    if (!withdrawn || header.length != 0) verdict.malformed = "a Skipped answer to a call the host never withdrew";
    else verdict.outcome = std::make_exception_ptr(TaskCancelled("the call was cancelled before it started"));
  }
  // A measured call's answer ends with its UsageTrailer.
  if (!skipped && verdict.malformed.empty() && measured) {
    verdict.usage.emplace();
    if (!peel_trailer(payload, rest, *verdict.usage))
      verdict.malformed = "an answer too short to hold the call's usage";
  }
}

void decode_answer(StateBase& state, const FrameHeader& header, std::span<const std::byte> payload,
                   std::span<const std::byte> rest, const HandleList* handles, const char* function, pid_t pid,
                   AnswerVerdict& verdict) {
  bool value = header.kind == static_cast<uint32_t>(FrameKind::Value);
  bool skipped = header.kind == static_cast<uint32_t>(FrameKind::Skipped);
  bool decode = payload.size() + rest.size() > 0 || !value || !state.void_value();
  if (!skipped && verdict.malformed.empty() && !verdict.outcome && decode) {
    try {
      InputArchive in(payload, rest, handles);
      if (value) {
        verdict.outcome = load_value(state, in, function, pid);
        if (!verdict.outcome && in.remaining() != 0)
          verdict.malformed = std::to_string(in.remaining()) + " stray bytes after the result";
      } else {
        verdict.outcome = state.load_exception(in, AnswerSource{function, pid});
      }
    } catch (const std::exception& e) {
      verdict.malformed = std::string("a result that does not decode (") + e.what() + ")";
    } catch (...) {
      verdict.malformed = "a result whose loading threw a non-standard exception";
    }
  }
  if (!verdict.malformed.empty()) {
    try {
      verdict.outcome = std::make_exception_ptr(ProtocolError(pid, function, "it wrote " + verdict.malformed));
    } catch (...) {
      verdict.outcome = std::current_exception();  // out of memory: fail the call with that
    }
  }
  if (verdict.outcome) state.set_error(verdict.outcome);
  if (verdict.usage && verdict.malformed.empty()) {
    const UsageTrailer& u = *verdict.usage;
    try {
      state.set_usage(CallUsage{
          std::chrono::nanoseconds(static_cast<int64_t>(std::min<uint64_t>(u.wall_ns, INT64_MAX))),
          std::chrono::nanoseconds(static_cast<int64_t>(std::min<uint64_t>(u.cpu_ns, INT64_MAX))), u.peak_rss_bytes});
    } catch (...) {
      // Out of memory for the report: the call's outcome stands without it.
    }
  }
}

}  // namespace procpool::detail
