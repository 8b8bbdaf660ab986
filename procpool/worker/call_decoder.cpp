// SPDX-License-Identifier: MIT
#include <procpool/worker/call_decoder.hpp>

#include <string>

#include <procpool/common/errors.hpp>

namespace procpool::detail {

RequestKind classify_request(const FrameHeader& header, size_t max_message_bytes) noexcept {
  if (header.magic != kFrameMagic) return RequestKind::Malformed;
  if (header.kind == static_cast<uint32_t>(FrameKind::Stop)) return RequestKind::Stop;
  bool call = header.kind == static_cast<uint32_t>(FrameKind::Call);
  bool many = header.kind == static_cast<uint32_t>(FrameKind::CallMany);
  if ((!call && !many) || header.length > max_message_bytes || handle_count(header.handles) > kMaxHandlesPerFrame)
    return RequestKind::Malformed;
  return many ? RequestKind::CallMany : RequestKind::Call;
}

const FunctionEntry& decode_call_target(InputArchive& args, uint32_t& id) {
  id = 0;
  uint64_t fp = 0;
  args(id, fp);
  const FunctionEntry* entry = FunctionRegistry::instance().at(id);
  if (!entry) throw UnknownFunction("#" + std::to_string(id), {});
  if (fp != entry->fingerprint)
    throw SerializationError(entry->name,
                             "the call's signature fingerprint does not match the registered " + entry->signature);
  return *entry;
}

void invoke_call(const FunctionEntry& entry, InputArchive& args, bool many, OutputArchive& result) {
  try {
    (many ? entry.invoke_many : entry.invoke)(entry.fn, args, result);
  } catch (const DecodeError& e) {
    throw SerializationError(entry.name, std::string("the arguments do not decode: ") + e.what());
  } catch (const EncodeError& e) {
    throw SerializationError(entry.name, std::string("the result could not be encoded: ") + e.what());
  } catch (const cereal::Exception& e) {
    throw SerializationError(entry.name, std::string("cereal: ") + e.what());
  }
}

}  // namespace procpool::detail
