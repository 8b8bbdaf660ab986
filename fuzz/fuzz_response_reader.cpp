// SPDX-License-Identifier: MIT
// Everything the host reads from a worker's response ring, run as the pool
// runs it: read_responses (the framing: headers, Part and Dropped
// sequences, lengths up to 2^64, the task ids) over a ring whose bytes,
// head, tail and space_event word come from the input, and each answer it
// finds through check_answer and decode_answer (the payload: cereal values,
// exception records, usage trailers, SharedBytes against the frame's handle
// count) into a call state of the result type the input picks. Every input
// must end in answers that settle (with a value, the worker's exception, or
// ProtocolError), in a reason to condemn the worker, or in RingCorrupt:
// never a crash, a hang, undefined behaviour or a read out of bounds.
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

#include <procpool/loop/answer_decoder.hpp>
#include <procpool/loop/response_stream.hpp>
#include <procpool/procpool.hpp>

#include "response_input.hpp"
#include "seeds.hpp"

using namespace procpool;
using namespace procpool::detail;
using namespace procpool::fuzz;

void write_response_seeds(const std::string& dir);  // response_seeds.cpp

namespace {

#define FUZZ_CHECK(cond)           \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

// Sealed memory for the SharedBytes a frame claims: handle i holds i + 1 bytes.
HandleList g_handles;

std::shared_ptr<StateBase> make_state(uint8_t type) {
  switch (type % kResultTypeCount) {
    case kVoid:
      return std::make_shared<SharedState<void>>();
    case kInt:
      return std::make_shared<SharedState<int64_t>>();
    case kString:
      return std::make_shared<SharedState<std::string>>();
    case kStrings:
      return std::make_shared<SharedState<std::vector<std::string>>>();
    case kMap:
      return std::make_shared<SharedState<std::map<int32_t, std::vector<double>>>>();
    case kTuple:
      return std::make_shared<
          SharedState<std::tuple<std::optional<std::string>, std::variant<int, std::string, std::monostate>, bool>>>();
    case kSharedBytes:
      return std::make_shared<SharedState<SharedBytes>>();
    case kSharedBytesVector:
      return std::make_shared<SharedState<std::vector<SharedBytes>>>();
    case kChunk:
      return std::make_shared<ChunkState<int>>(kChunkCalls);
    case kOutcomeChunk:
      return std::make_shared<OutcomeChunkState<std::string>>(kChunkCalls);
    default:
      return std::make_shared<SharedState<std::vector<char>>>();
  }
}

// What a caller does with an exception it gets: what(), the RemoteOrigin,
// the levels it nests.
void walk(std::exception_ptr e) {
  for (size_t depth = 0; e; ++depth) {
    FUZZ_CHECK(depth <= kMaxNesting);
    std::exception_ptr next;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      volatile size_t n = std::strlen(ex.what());
      if (auto* origin = dynamic_cast<const RemoteOrigin*>(&ex))
        n = n + origin->message().size() + origin->type_name().size();
      if (auto* nested = dynamic_cast<const std::nested_exception*>(&ex)) next = nested->nested_ptr();
    } catch (...) {
      __builtin_trap();  // every exception the host rebuilds derives from std::exception
    }
    e = next;
  }
}

// Reads every byte of a SharedBytes (ASan: its mapping is as long as it says).
void touch(const SharedBytes& b) {
  volatile unsigned sum = 0;
  for (std::byte x : b.bytes()) sum = sum + static_cast<unsigned>(x);
}

void use_value(StateBase& state, uint8_t type) {
  switch (type % kResultTypeCount) {
    case kSharedBytes:
      touch(static_cast<SharedState<SharedBytes>&>(state).take());
      break;
    case kSharedBytesVector:
      for (const SharedBytes& b : static_cast<SharedState<std::vector<SharedBytes>>&>(state).take()) touch(b);
      break;
    case kChunk:
      FUZZ_CHECK(static_cast<ChunkState<int>&>(state).take().size() == kChunkCalls);
      break;
    case kOutcomeChunk: {
      auto outcomes = static_cast<OutcomeChunkState<std::string>&>(state).take();
      FUZZ_CHECK(outcomes.size() == kChunkCalls);
      for (auto& r : outcomes)
        if (!r.has_value()) walk(r.error());
      break;
    }
    default:
      break;
  }
}

// The pool's side of read_responses, for calls first_task, first_task + 1, ...
class FuzzTaker final : public AnswerTaker {
 public:
  FuzzTaker(const ResponseSetup& setup, size_t max_message)
      : setup_(setup), max_message_(max_message), front_(setup.first_task) {}

  std::string accept(const FrameHeader& h, bool ends, bool whole) override {
    FUZZ_CHECK(h.magic == kFrameMagic && is_response(h.kind) && h.length <= max_message_);
    bool idle = setup_.flags & kIdle, arriving = idle && (setup_.flags & kArriving) && !ends;
    if (idle && !arriving) return "it was running none";
    if (h.task_id != front_) return "it was running another task";
    taken_ = whole;
    return {};
  }

  void settle(const FrameHeader& h, std::span<const std::byte> payload, std::span<const std::byte> rest,
              bool whole) override {
    FUZZ_CHECK(whole == taken_ && payload.size() + rest.size() == h.length && h.length <= max_message_);
    FUZZ_CHECK(!(setup_.flags & kIdle));  // an answer ends only for a call wholly sent
    FUZZ_CHECK(h.handles <= kMaxHandlesPerFrame &&
               (h.handles == 0 || h.kind == static_cast<uint16_t>(FrameKind::Value)));
    ++front_;
    taken_ = false;
    // As PoolCore::settle_answer: the descriptors, the checks, the claim, the decoding.
    HandleList handles(g_handles.begin(), g_handles.begin() + h.handles);
    AnswerVerdict verdict;
    check_answer(h, setup_.flags & kWithdrawn, setup_.flags & kMeasured, payload, rest, verdict);
    std::shared_ptr<StateBase> state = make_state(setup_.result);
    FUZZ_CHECK(state->try_claim());
    decode_answer(*state, h, payload, rest, &handles, "fuzzed", 4242, verdict);
    state->publish();
    FUZZ_CHECK(state->ready());
    if (!verdict.malformed.empty()) {
      try {
        std::rethrow_exception(verdict.outcome);
      } catch (const ProtocolError&) {
      } catch (...) {
        __builtin_trap();  // a malformed answer fails its call with ProtocolError
      }
    } else if (verdict.outcome) {
      walk(verdict.outcome);
    } else {
      use_value(*state, setup_.result);
    }
  }

  void wake_producer() override { ++wakes_; }

 private:
  const ResponseSetup& setup_;
  size_t max_message_;
  TaskId front_;
  bool taken_ = false;
  size_t wakes_ = 0;
};

// What a worker leaves in the SmallCopy beside the head: a whole copy, or
// one whose seq is odd (it was cut short while writing it).
void fill_copy(SmallCopy& copy, uint32_t len, uint64_t end, const uint64_t (&words)[kSmallCopyWords], bool torn) {
  uint32_t seq = (copy.seq.load() | 1U) + (torn ? 0 : 1);
  copy.len.store(len);
  copy.end.store(end);
  for (size_t i = 0; i < kSmallCopyWords; ++i) copy.words[i].store(words[i]);
  copy.seq.store(seq);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  write_seeds_if_asked(*argc, *argv, write_response_seeds);
  for (size_t i = 0; i < kMaxHandlesPerFrame; ++i)
    g_handles.push_back(SharedBytes::copy_of(std::string(i + 1, 'h')).memory());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ResponseSetup setup;
  if (size < sizeof setup) return 0;
  std::memcpy(&setup, data, sizeof setup);
  data += sizeof setup;
  size -= sizeof setup;
  size_t cap = size_t{64} << (setup.ring_log2 % 7);
  size_t max_message = setup.max_message == kNoLimit ? SIZE_MAX : setup.max_message;

  // The shared segment as the worker leaves it: indices and event word from the input.
  RingHeader header;
  std::vector<std::byte> bytes(cap);
  header.head.store(setup.tail);
  header.tail.store(setup.tail);
  header.space_event.store(setup.space_event);
  ByteRing ring(&header, bytes.data(), cap);
  AnswerAssembly answer;
  FuzzTaker taker(setup, max_message);

  // The worker publishes one unit at a time, as much of it as fits; the
  // host reads after every store of the head. Bounded: every round
  // publishes a byte or is the last.
  uint64_t head = setup.tail;
  size_t unit_left = 0;
  bool skewed = false;
  for (;;) {
    if (unit_left == 0 && size >= 2) {
      uint16_t n;
      std::memcpy(&n, data, 2);
      data += 2;
      size -= 2;
      unit_left = std::min<size_t>(n, size);
    }
    size_t free = cap - static_cast<size_t>(head - header.tail.load());
    size_t n = std::min(unit_left, free);
    for (size_t i = 0; i < n; ++i) bytes[(head + i) & (cap - 1)] = static_cast<std::byte>(data[i]);
    data += n;
    size -= n;
    unit_left -= n;
    head += n;
    bool last = n == 0;
    if (last) {
      if (skewed || setup.head_skew == 0) break;
      head += setup.head_skew;  // a head out of range, or one that moves backwards
      skewed = true;
    }
    if (n > 0 && n <= kSmallCopyBytes && (setup.copy & kHonestCopy)) {
      uint64_t words[kSmallCopyWords] = {};
      for (size_t i = 0; i < n; ++i) reinterpret_cast<std::byte*>(words)[i] = bytes[(head - n + i) & (cap - 1)];
      fill_copy(header.small, static_cast<uint32_t>(n), head, words, false);
    }
    // After the whole unit (it may take several rounds when the ring is full).
    if ((setup.copy & kForgedCopy) && unit_left == 0 && n > 0 && size >= 3 + kSmallCopyBytes) {
      uint64_t words[kSmallCopyWords];
      std::memcpy(words, data + 3, kSmallCopyBytes);
      fill_copy(header.small, data[0], head - data[1], words, data[2] & 1);
      data += 3 + kSmallCopyBytes;
      size -= 3 + kSmallCopyBytes;
    }
    header.head.store(head);
    if (setup.flags & kProducerSleeps) announce_sleep(header.space_event);
    try {
      if (!read_responses(ring, answer, max_message, setup.flags & kDead, taker).empty()) break;  // condemned
    } catch (const RingCorrupt&) {
      break;
    }
    uint64_t tail = header.tail.load();
    FUZZ_CHECK(tail - setup.tail <= head - setup.tail);  // never reads past what was published
  }
  return 0;
}
