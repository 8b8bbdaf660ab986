// SPDX-License-Identifier: MIT
// How a worker reads a call's payload (worker/call_decoder.hpp): exactly the
// function id, its fingerprint and the arguments, no byte more or less. The
// in-process cases run the decoder as the worker loop does; the pool cases
// hand a real worker a forged frame through the door the MPI agent uses.
#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <procpool/loop/process_pool.hpp>
#include <procpool/worker/call_decoder.hpp>

#include "support/census.hpp"
#include "support/task_functions.hpp"

namespace {

std::atomic<int> g_runs{0};
int count_run(int x) {
  ++g_runs;
  return x + 1;
}

}  // namespace

PROCPOOL_REGISTER(count_run);

namespace {

using namespace procpool::detail;

// A call frame of `fn` as the host encodes one, with `extra` bytes after its
// arguments (negative: that many cut off their end); the header's length
// counts what is there.
template <class Encode>
ByteBuffer call_frame(ErasedFn fn, FrameKind kind, Encode&& encode, int extra) {
  uint32_t id = 0;
  const FunctionEntry* entry = FunctionRegistry::instance().find(fn, &id);
  REQUIRE(entry);
  ByteBuffer payload;
  OutputArchive ar(payload);
  ar(id, entry->fingerprint);
  encode(ar);
  size_t size = payload.size();
  if (extra < 0) size -= static_cast<size_t>(-extra);
  for (int i = 0; i < extra; ++i) {
    uint8_t byte = 0xA5;
    ar(byte);
    ++size;
  }
  ByteBuffer frame;
  FrameHeader h = make_frame_header(kind, 1, size, 0);
  frame.append(&h, sizeof h);
  frame.append(payload.data(), size);
  return frame;
}

ByteBuffer one_call(int x, int extra) {
  return call_frame(
      reinterpret_cast<ErasedFn>(&count_run), FrameKind::Call, [x](OutputArchive& ar) { ar(x); }, extra);
}

ByteBuffer many_calls(ManyMode mode, std::vector<int> xs, int extra) {
  return call_frame(
      reinterpret_cast<ErasedFn>(&count_run), FrameKind::CallMany,
      [&](OutputArchive& ar) {
        ar(static_cast<uint8_t>(mode), cereal::make_size_tag(static_cast<cereal::size_type>(xs.size())));
        for (int x : xs) ar(x);
      },
      extra);
}

// What a worker's call_decoder does with `frame`: its result bytes, or what
// it threw.
void decode_and_run(const ByteBuffer& frame, ByteBuffer& result) {
  FrameHeader h;
  std::memcpy(&h, frame.data(), sizeof h);
  InputArchive args(frame.data() + sizeof h, h.length);
  uint32_t id = 0;
  const FunctionEntry& entry = decode_call_target(args, id);
  OutputArchive out(result);
  invoke_call(entry, args, h.kind == static_cast<uint32_t>(FrameKind::CallMany), out);
}

}  // namespace

TEST_CASE("CallDecoder.ACallOfExactlyItsArgumentsRuns" * doctest::timeout(10)) {
  g_runs = 0;
  ByteBuffer result;
  decode_and_run(one_call(41, 0), result);
  InputArchive in(result.data(), result.size());
  int value = 0;
  in(value);
  CHECK(value == 42);
  CHECK(g_runs == 1);
}

TEST_CASE("CallDecoder.BytesAfterTheArgumentsFailTheCallWithSerializationErrorBeforeItRuns" * doctest::timeout(10)) {
  g_runs = 0;
  ByteBuffer result;
  CHECK_THROWS_WITH_AS(decode_and_run(one_call(41, 3), result),
                       "'count_run': the arguments do not decode: 3 stray bytes after the last argument",
                       procpool::SerializationError);
  CHECK(g_runs == 0);
  CHECK_THROWS_WITH_AS(decode_and_run(one_call(41, 1), result), doctest::Contains("1 stray bytes"),
                       procpool::SerializationError);
  CHECK(g_runs == 0);
}

TEST_CASE("CallDecoder.TruncatedArgumentsFailTheCallWithSerializationErrorBeforeItRuns" * doctest::timeout(10)) {
  g_runs = 0;
  ByteBuffer result;
  CHECK_THROWS_WITH_AS(decode_and_run(one_call(41, -1), result),
                       "'count_run': the arguments do not decode: truncated data: needed 4 bytes, 3 left",
                       procpool::SerializationError);
  CHECK(g_runs == 0);
}

TEST_CASE("CallDecoder.BytesAfterACallManysLastCallFailTheChunkBeforeThatCallRuns" * doctest::timeout(10)) {
  for (ManyMode mode : {ManyMode::StopAtFirstThrow, ManyMode::EachOutcome}) {
    CAPTURE(static_cast<int>(mode));
    g_runs = 0;
    ByteBuffer result;
    decode_and_run(many_calls(mode, {1, 2, 3}, 0), result);
    CHECK(g_runs == 3);
    g_runs = 0;
    result.clear();
    CHECK_THROWS_WITH_AS(decode_and_run(many_calls(mode, {1, 2, 3}, 2), result),
                         doctest::Contains("2 stray bytes after the last argument"), procpool::SerializationError);
    CHECK(g_runs == 2);  // the calls before the last, streamed, have run
    g_runs = 0;
    CHECK_THROWS_WITH_AS(decode_and_run(many_calls(mode, {}, 4), result),
                         doctest::Contains("4 stray bytes after the last argument"), procpool::SerializationError);
    CHECK(g_runs == 0);
  }
}

TEST_CASE("CallDecoder.AWorkerAnswersStrayBytesWithSerializationErrorAndServesTheNextCall" * doctest::timeout(60)) {
  census::Snapshot before;
  {
    procpool::ProcessPool pool({.workers = 1});
    int pid = pool.submit(tasks::pid_of_worker).get();
    uint32_t id = 0;
    REQUIRE(FunctionRegistry::instance().find(reinterpret_cast<ErasedFn>(&count_run), &id));
    auto state = std::make_shared<SharedState<int>>();
    submit_encoded_call(pool, one_call(7, 5), {}, FrameKind::Call, id, state, {});
    procpool::Future<int> forged(state);
    CHECK_THROWS_WITH_AS(forged.get(), doctest::Contains("5 stray bytes after the last argument"),
                         procpool::SerializationError);
    auto exact = std::make_shared<SharedState<int>>();
    submit_encoded_call(pool, one_call(7, 0), {}, FrameKind::Call, id, exact, {});
    CHECK(procpool::Future<int>(exact).get() == 8);
    CHECK(pool.submit(tasks::pid_of_worker).get() == pid);  // not killed: the frame itself was sound
  }
  CHECK(census::leaks_since(before).empty());
}
