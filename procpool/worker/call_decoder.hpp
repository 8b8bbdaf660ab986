// SPDX-License-Identifier: MIT
#pragma once
// How a worker reads a request frame: what its header asks for, which
// registered function its payload names, and that function run on the
// arguments that follow. The worker loop (worker_loop.cpp) serves every call
// through these, and fuzz/fuzz_call_decoder.cpp feeds them forged frames:
// the host is trusted, but a worker must not be one bad frame from memory
// corruption (a bug on either side, a task that scribbles on its ring).
#include <cstddef>

#include <procpool/common/archive.hpp>
#include <procpool/common/frame.hpp>
#include <procpool/common/function_registry.hpp>

namespace procpool::detail {

enum class RequestKind { Call, CallMany, Stop, Malformed };

// What a request header asks for: Malformed for a bad magic or kind, a
// payload over max_message_bytes, or more descriptors than a frame carries.
RequestKind classify_request(const FrameHeader& header, size_t max_message_bytes) noexcept;

// Reads the function id and signature fingerprint at the start of a call's
// payload. Throws UnknownFunction for an id nothing is registered under,
// SerializationError when the fingerprint is not the function's, DecodeError
// when the payload is too short to hold them. `id`: set to the function's id.
const FunctionEntry& decode_call_target(InputArchive& args, uint32_t& id);

// Runs `entry` on the arguments left in `args` (a CallMany's calls when
// `many`), its result encoded into `result`. Arguments that do not decode
// (too few bytes, or bytes left after the last call's: the payload must end
// with them) and a result that does not encode throw SerializationError
// naming the function, the arguments' before the call runs; what the
// function itself throws propagates as it is.
void invoke_call(const FunctionEntry& entry, InputArchive& args, bool many, OutputArchive& result);

}  // namespace procpool::detail
