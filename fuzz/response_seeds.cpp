// SPDX-License-Identifier: MIT
// fuzz_response_reader's seeds: answers as workers write them, made with
// the library's encoders (OutputArchive, encode_current_exception,
// make_frame_header), one file per way an answer can come.
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <procpool/common/byte_ring.hpp>
#include <procpool/procpool.hpp>

#include "response_input.hpp"
#include "seeds.hpp"

using namespace procpool;
using namespace procpool::detail;
using namespace procpool::fuzz;

namespace {

constexpr TaskId kTask = 7;

class Seed {
 public:
  explicit Seed(uint8_t result, uint8_t flags = 0, uint8_t ring_log2 = 4) {
    setup_ = ResponseSetup{ring_log2, flags, result, 0, 1 << 20, 0, kTask, 0, 0, 0};
  }
  ResponseSetup& setup() { return setup_; }
  // One store of the head: a frame, or several.
  void publish(const ByteBuffer& bytes) {
    auto n = static_cast<uint16_t>(bytes.size());
    units_.append(&n, sizeof n);
    units_.append(bytes.data(), bytes.size());
  }
  // With kForgedCopy: what the SmallCopy beside the head holds after the
  // unit just published (response_input.hpp).
  void forged_copy(uint8_t len, uint8_t back, bool torn, const std::string& bytes) {
    uint8_t head[3] = {len, back, static_cast<uint8_t>(torn)};
    units_.append(head, sizeof head);
    std::string words = bytes;
    words.resize(kSmallCopyBytes, '\0');
    units_.append(words.data(), words.size());
  }
  void frame(FrameKind kind, TaskId task, const ByteBuffer& payload, size_t handles = 0) {
    ByteBuffer f;
    FrameHeader h = make_frame_header(kind, task, payload.size(), handles);
    f.append(&h, sizeof h);
    f.append(payload.data(), payload.size());
    publish(f);
  }
  void write(const std::string& dir, const std::string& name) {
    ByteBuffer all;
    all.append(&setup_, sizeof setup_);
    all.append(units_.data(), units_.size());
    write_seed(dir, name, all);
  }

 private:
  ResponseSetup setup_;
  ByteBuffer units_;
};

template <class... T>
ByteBuffer encoded(const T&... values) {
  ByteBuffer out;
  OutputArchive ar(out);
  ar(values...);
  return out;
}

ByteBuffer exception_record(bool nested) {
  ByteBuffer out;
  try {
    if (!nested) throw std::invalid_argument("Unlucky number!");
    try {
      throw std::out_of_range("inner");
    } catch (...) {
      std::throw_with_nested(std::runtime_error("outer"));
    }
  } catch (...) {
    encode_current_exception(out, "#0 0x1 in lucky_number", 1 << 20);
  }
  return out;
}

}  // namespace

void write_response_seeds(const std::string& dir) {
  {
    Seed s(kInt);
    s.frame(FrameKind::Value, kTask, encoded(int64_t{1499998500000}));
    s.write(dir, "value_int");
  }
  {
    Seed s(kString);  // starts 10 bytes before the ring's end: the answer wraps
    s.setup().tail = (64 << 4) - 10;
    s.frame(FrameKind::Value, kTask, encoded(std::string("hello, ring")));
    s.write(dir, "value_wraps");
  }
  {
    Seed s(kStrings);
    s.frame(FrameKind::Value, kTask, encoded(std::vector<std::string>{"a", "bc"}));
    s.frame(FrameKind::Value, kTask + 1, encoded(std::vector<std::string>{}));
    s.write(dir, "two_answers");
  }
  {
    Seed s(kInt);
    s.frame(FrameKind::Exception, kTask, exception_record(false));
    s.write(dir, "exception");
  }
  {
    Seed s(kString);
    s.frame(FrameKind::Exception, kTask, exception_record(true));
    s.write(dir, "exception_nested");
  }
  {
    Seed s(kVoid);
    s.frame(FrameKind::Value, kTask, ByteBuffer());
    s.write(dir, "value_void");
  }
  {
    // An answer larger than a 256-byte ring: a first Part, later Parts of
    // at least min_later_part_bytes, then the Value that ends it.
    Seed s(kString, 0, 2);
    ByteBuffer all = encoded(std::string(300, 'x'));
    size_t cut1 = 100, cut2 = cut1 + min_later_part_bytes(256) + 20;
    ByteBuffer p1, p2, last;
    p1.append(all.data(), cut1);
    p2.append(all.data() + cut1, cut2 - cut1);
    last.append(all.data() + cut2, all.size() - cut2);
    s.frame(FrameKind::Part, kTask, p1);
    s.frame(FrameKind::Part, kTask, p2);
    s.frame(FrameKind::Value, kTask, last);
    s.write(dir, "parts");
  }
  {
    Seed s(kInt);
    ByteBuffer junk;
    junk.append("half an answer", 14);
    s.frame(FrameKind::Part, kTask, junk);
    s.frame(FrameKind::Dropped, kTask, ByteBuffer());
    s.frame(FrameKind::Value, kTask, encoded(int64_t{5}));
    s.write(dir, "dropped_then_value");
  }
  {
    Seed s(kInt, kWithdrawn);
    s.frame(FrameKind::Skipped, kTask, ByteBuffer());
    s.write(dir, "skipped");
  }
  {
    Seed s(kInt, kMeasured);
    ByteBuffer payload = encoded(int64_t{3});
    UsageTrailer usage{1000, 900, 1 << 20};
    payload.append(&usage, sizeof usage);
    s.frame(FrameKind::Value, kTask, payload);
    s.write(dir, "measured");
  }
  {
    // SharedBytes travel as (size, index into the frame's handles); the
    // fuzzer's handle i holds i + 1 bytes.
    Seed s(kSharedBytesVector);
    ByteBuffer payload;
    OutputArchive ar(payload);
    ar(cereal::make_size_tag(cereal::size_type{2}), uint64_t{1}, uint32_t{0}, uint64_t{3}, uint32_t{2});
    s.frame(FrameKind::Value, kTask, payload, 3);
    s.write(dir, "shared_bytes");
  }
  {
    Seed s(kChunk);
    s.frame(FrameKind::Value, kTask, encoded(std::vector<int>{1, 2, 3}));
    s.write(dir, "map_chunk");
  }
  {
    Seed s(kOutcomeChunk);  // return_exceptions: per call true and a value, or false and a record
    ByteBuffer record = exception_record(false), payload;
    OutputArchive ar(payload);
    ar(cereal::make_size_tag(cereal::size_type{kChunkCalls}), true, std::string("a"), false,
       cereal::make_size_tag(cereal::size_type{record.size()}), cereal::binary_data(record.data(), record.size()), true,
       std::string("c"));
    s.frame(FrameKind::Value, kTask, payload);
    s.write(dir, "map_outcomes");
  }
  {
    Seed s(kBytes);
    s.frame(FrameKind::Value, kTask, encoded(std::vector<char>{'b', 'y', 't', 'e'}));
    s.write(dir, "byte_vector");
  }
  {
    // Small answers, each also in the SmallCopy beside the head, as a
    // worker's ByteRing::publish leaves them.
    Seed s(kInt);
    s.setup().copy = kHonestCopy;
    s.frame(FrameKind::Value, kTask, encoded(int64_t{11}));
    s.frame(FrameKind::Value, kTask + 1, encoded(int64_t{12}));
    s.write(dir, "small_copy");
  }
  {
    // A SmallCopy that says other bytes than the ring: a different answer,
    // then one claiming bytes before the tail, then a torn one.
    Seed s(kInt);
    s.setup().copy = kForgedCopy;
    ByteBuffer real, other;
    FrameHeader h = make_frame_header(FrameKind::Value, kTask, 8);
    real.append(&h, sizeof h);
    ByteBuffer v = encoded(int64_t{1});
    real.append(v.data(), v.size());
    s.publish(real);
    other.append(&h, sizeof h);
    ByteBuffer w = encoded(int64_t{2});
    other.append(w.data(), w.size());
    s.forged_copy(static_cast<uint8_t>(other.size()), 0, false,
                  std::string(reinterpret_cast<const char*>(other.data()), other.size()));
    FrameHeader h2 = make_frame_header(FrameKind::Value, kTask + 1, 8);
    ByteBuffer second;
    second.append(&h2, sizeof h2);
    second.append(v.data(), v.size());
    s.publish(second);
    s.forged_copy(40, 8, false, std::string(40, 'z'));
    s.publish(second);
    s.forged_copy(static_cast<uint8_t>(second.size()), 0, true, std::string(16, 'q'));
    s.write(dir, "forged_copy");
  }
  {
    Seed s(kInt, kDead);  // a header whose payload the worker died before writing
    ByteBuffer header;
    FrameHeader h = make_frame_header(FrameKind::Value, kTask, 100);
    header.append(&h, sizeof h);
    s.publish(header);
    s.write(dir, "dead_mid_frame");
  }
  {
    Seed s(kChunk, kIdle | kArriving | kProducerSleeps);  // a chunk answering while its call streams in
    ByteBuffer part;
    part.append("\x03\0\0\0\0\0\0\0", 8);
    s.frame(FrameKind::Part, kTask, part);
    s.write(dir, "part_while_sending");
  }
  {
    Seed s(kInt);  // a head beyond the ring's capacity
    s.setup().head_skew = 1 << 20;
    s.frame(FrameKind::Value, kTask, encoded(int64_t{1}));
    s.write(dir, "head_out_of_range");
  }
  {
    Seed s(kString);  // a pool whose max_message_bytes is SIZE_MAX: lengths are bounded by the ring alone
    s.setup().max_message = kNoLimit;
    s.frame(FrameKind::Value, kTask, encoded(std::string("no limit")));
    s.write(dir, "no_limit");
  }
  {
    // A length that wraps header plus payload past 2^64 (a regression: the
    // host once read the string's 1000 bytes past a 64-byte ring).
    Seed s(kString, 0, 0);
    s.setup().max_message = kNoLimit;
    ByteBuffer frame;
    FrameHeader h = make_frame_header(FrameKind::Value, kTask, ~uint64_t{0} - 7);
    uint64_t forged = 1000;
    frame.append(&h, sizeof h);
    frame.append(&forged, sizeof forged);
    s.publish(frame);
    s.write(dir, "length_wraps");
  }
  {
    Seed s(kTuple);
    s.frame(FrameKind::Value, kTask, encoded(std::string("x")));
    s.write(dir, "tuple_mismatch");
  }
}
