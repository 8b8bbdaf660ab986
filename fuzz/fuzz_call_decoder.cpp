// SPDX-License-Identifier: MIT
// A worker's reading of a request frame, as worker_loop.cpp does it:
// classify_request on the header, then decode_call_target (function id and
// signature fingerprint) and invoke_call (the arguments, into the
// registered function's parameter types, for one Call or a CallMany's
// calls in either ManyMode) over the payload, held whole, in two pieces
// (wrapping the ring) or streaming in small pieces, as the task id picks.
// Every input must end in Stop, a malformed header, a result, or one of
// the library's typed errors (UnknownFunction, SerializationError,
// DecodeError), which the worker then encodes as its answer; a payload with
// bytes after its arguments is one of those errors.
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include <procpool/procpool.hpp>
#include <procpool/worker/call_decoder.hpp>

#include "seeds.hpp"

using namespace procpool;
using namespace procpool::detail;

namespace {

struct Point {
  double x = 0, y = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(x, y);
  }
};

// Registered functions of varied signatures; none throws.
int64_t fz_add(int32_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}
std::string fz_concat(std::string a, std::vector<std::string> rest) {
  for (const auto& s : rest) a += s;
  return a;
}
size_t fz_count(std::map<std::string, std::vector<int>> m) { return m.size(); }
bool fz_variant(std::variant<int, std::string, std::monostate> v, std::optional<double> d, bool flag) {
  return v.index() == 1 && d.has_value() && flag;
}
void fz_none() {}
size_t fz_shared(SharedBytes one, std::vector<SharedBytes> many) {
  size_t sum = 0;
  for (std::byte b : one.bytes()) sum += static_cast<size_t>(b);
  for (const auto& m : many)
    for (std::byte b : m.bytes()) sum += static_cast<size_t>(b);
  return sum;
}
std::vector<char> fz_echo(std::vector<char> bytes) { return bytes; }
Point fz_point(Point p, std::tuple<int, std::string> t) { return {p.x + std::get<0>(t), p.y}; }

}  // namespace

PROCPOOL_REGISTER(fz_add);
PROCPOOL_REGISTER(fz_concat);
PROCPOOL_REGISTER(fz_count);
PROCPOOL_REGISTER(fz_variant);
PROCPOOL_REGISTER(fz_none);
PROCPOOL_REGISTER(fz_shared);
PROCPOOL_REGISTER(fz_echo);
PROCPOOL_REGISTER(fz_point);

namespace {

constexpr size_t kMaxMessage = size_t{1} << 20;
HandleList g_handles;  // the descriptors a call claims: handle i holds i + 1 bytes

// A call streaming in through the request ring: pieces of at most `step` bytes.
class Trickle final : public ByteSource {
 public:
  Trickle(std::span<const std::byte> bytes, size_t step) : bytes_(bytes), step_(step) {}
  std::span<const std::byte> next(size_t most) override {
    size_t n = std::min({most, step_, bytes_.size()});
    if (n == 0) __builtin_trap();  // asked past the message's end
    auto piece = bytes_.first(n);
    bytes_ = bytes_.subspan(n);
    return piece;
  }

 private:
  std::span<const std::byte> bytes_;
  size_t step_;
};

// A valid call of `name`, encoded as the host encodes one (ProcessPool::enqueue_into).
template <class... A>
ByteBuffer call_frame(const char* name, FrameKind kind, size_t handles, const A&... args) {
  uint32_t id = 0;
  const FunctionEntry* entry = FunctionRegistry::instance().find(std::string_view(name), &id);
  if (!entry) std::abort();
  ByteBuffer payload;
  OutputArchive ar(payload);
  ar(id, entry->fingerprint, args...);
  ByteBuffer frame;
  FrameHeader h = make_frame_header(kind, 1, payload.size(), handles);
  frame.append(&h, sizeof h);
  frame.append(payload.data(), payload.size());
  return frame;
}

void write_seeds(const std::string& dir) {
  using fuzz::write_seed;
  auto many = [](size_t n) { return cereal::make_size_tag(static_cast<cereal::size_type>(n)); };
  write_seed(dir, "add", call_frame("fz_add", FrameKind::Call, 0, int32_t{3}, int64_t{4}));
  write_seed(dir, "concat",
             call_frame("fz_concat", FrameKind::Call, 0, std::string("a"), std::vector<std::string>{"b", "c"}));
  write_seed(dir, "count",
             call_frame("fz_count", FrameKind::Call, 0, std::map<std::string, std::vector<int>>{{"k", {1, 2}}}));
  write_seed(dir, "variant",
             call_frame("fz_variant", FrameKind::Call, 0, std::variant<int, std::string, std::monostate>("s"),
                        std::optional<double>(1.5), true));
  write_seed(dir, "none", call_frame("fz_none", FrameKind::Call, 0));
  // SharedBytes: (size, index into the call's handles); handle i holds i + 1 bytes.
  write_seed(dir, "shared",
             call_frame("fz_shared", FrameKind::Call, 2, uint64_t{1}, uint32_t{0}, many(1), uint64_t{2}, uint32_t{1}));
  write_seed(dir, "echo", call_frame("fz_echo", FrameKind::Call, 0, std::vector<char>{'x', 'y'}));
  write_seed(dir, "point",
             call_frame("fz_point", FrameKind::Call, 0, Point{1, 2}, std::tuple<int, std::string>{3, "t"}));
  write_seed(dir, "many_stop_at_first_throw",
             call_frame("fz_add", FrameKind::CallMany, 0, uint8_t{0}, many(2), int32_t{1}, int64_t{2}, int32_t{3},
                        int64_t{4}));
  write_seed(dir, "many_each_outcome",
             call_frame("fz_concat", FrameKind::CallMany, 0, uint8_t{1}, many(1), std::string("a"),
                        std::vector<std::string>{}));
  // A byte after the last argument: refused before the call runs.
  ByteBuffer stray = call_frame("fz_add", FrameKind::Call, 0, int32_t{3}, int64_t{4});
  uint8_t extra = 0x5A;
  stray.append(&extra, 1);
  FrameHeader sh;
  std::memcpy(&sh, stray.data(), sizeof sh);
  ++sh.length;
  std::memcpy(stray.data(), &sh, sizeof sh);
  write_seed(dir, "stray_byte", stray);
  ByteBuffer stop;
  FrameHeader h = make_frame_header(FrameKind::Stop, 0, 0);
  stop.append(&h, sizeof h);
  write_seed(dir, "stop", stop);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  fuzz::write_seeds_if_asked(*argc, *argv, write_seeds);
  for (size_t i = 0; i < kMaxHandlesPerFrame; ++i)
    g_handles.push_back(SharedBytes::copy_of(std::string(i + 1, 'h')).memory());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FrameHeader h;
  if (size < sizeof h) return 0;
  std::memcpy(&h, data, sizeof h);
  RequestKind kind = classify_request(h, kMaxMessage);
  if (kind == RequestKind::Malformed || kind == RequestKind::Stop) return 0;
  // The payload is what follows, as much of it as the header announces.
  std::span<const std::byte> payload(reinterpret_cast<const std::byte*>(data) + sizeof h,
                                     std::min<size_t>(size - sizeof h, h.length));
  HandleList arguments(g_handles.begin(), g_handles.begin() + handle_count(h.handles));
  size_t split = std::min<size_t>(h.task_id & 0xFFFF, payload.size());
  Trickle trickle(payload, ((h.task_id >> 16) & 0xFF) + 1);
  std::optional<InputArchive> args;
  if (h.task_id >> 63) args.emplace(trickle, payload.size(), &arguments);
  else args.emplace(payload.first(split), payload.subspan(split), &arguments);
  ByteBuffer answer;
  HandleList results;
  try {
    uint32_t id = 0;
    const FunctionEntry& entry = decode_call_target(*args, id);
    OutputArchive result(answer, &results);
    invoke_call(entry, *args, kind == RequestKind::CallMany, result);
  } catch (const Error&) {  // UnknownFunction, SerializationError
    encode_current_exception(answer, "", kMaxMessage);
  } catch (const DecodeError&) {  // too short for a function id and fingerprint
    encode_current_exception(answer, "", kMaxMessage);
  }
  args->skip_rest();  // as the worker does, to reach the next frame
  if (args->remaining() != 0) __builtin_trap();
  return 0;
}
