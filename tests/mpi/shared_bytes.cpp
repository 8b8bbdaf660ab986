// SPDX-License-Identifier: MIT
// SharedBytes over MPI (procpool/mpi/shared_bytes_section.hpp): arguments
// and results cross as their bytes and arrive as SharedBytes of the
// receiving node, whole, in order, over the 1 MiB chunks of the channel.
#include <doctest/doctest.h>

#include <dirent.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/vector.hpp>

#include <procpool/mpi/mpi.hpp>

#include "mpi/suite_options.hpp"

using procpool::SharedBytes;
using procpool::mpi::MpiPool;

namespace {

// Byte i of a pattern of n: not periodic in a chunk's size, so a chunk out
// of place or repeated shows.
std::byte pattern_byte(size_t i) { return static_cast<std::byte>((i * 2654435761u) >> 13); }

SharedBytes mpi_pattern(size_t n) {
  return SharedBytes::make(n, [](std::span<std::byte> out) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = pattern_byte(i);
  });
}
SharedBytes mpi_reverse(SharedBytes b) {
  return SharedBytes::make(b.size(), [&](std::span<std::byte> out) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = b.bytes()[b.size() - 1 - i];
  });
}
SharedBytes mpi_echo_shared(SharedBytes b) { return b; }
size_t mpi_pattern_mismatches(SharedBytes b) {
  size_t wrong = 0;
  for (size_t i = 0; i < b.size(); ++i) wrong += b.bytes()[i] != pattern_byte(i);
  return wrong;
}
std::string mpi_join(std::vector<SharedBytes> parts, std::string separator) {
  std::string out;
  for (const SharedBytes& p : parts) out.append(p.view()).append(separator);
  return out;
}
// A result whose SharedBytes and payload together are over the suite's
// max_message_bytes, each under it.
std::tuple<SharedBytes, std::string> mpi_too_big_together(size_t each) {
  return {mpi_pattern(each), std::string(each, 'p')};
}

size_t open_fds() {
  size_t n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (readdir(d)) ++n;
    closedir(d);
  }
  return n;
}

}  // namespace

PROCPOOL_REGISTER(mpi_pattern);
PROCPOOL_REGISTER(mpi_reverse);
PROCPOOL_REGISTER(mpi_echo_shared);
PROCPOOL_REGISTER(mpi_pattern_mismatches);
PROCPOOL_REGISTER(mpi_join);
PROCPOOL_REGISTER(mpi_too_big_together);

TEST_CASE("MpiSharedBytes.AnArgumentAndAResultCrossAsTheirBytes" * doctest::timeout(60)) {
  MpiPool pool;
  SharedBytes hello = SharedBytes::copy_of(std::string_view("hello over MPI"));
  SharedBytes back = pool.submit(mpi_echo_shared, hello).get();
  CHECK(back.view() == "hello over MPI");
  CHECK(back.memory() != hello.memory());  // made on the host from the bytes
  CHECK(pool.submit(mpi_reverse, hello).get().view() == "IPM revo olleh");
  CHECK(pool.submit(mpi_pattern_mismatches, mpi_pattern(1000)).get() == 0);
  SharedBytes made = pool.submit(mpi_pattern, size_t{1000}).get();
  CHECK(made.size() == 1000);
  CHECK(mpi_pattern_mismatches(made) == 0);
  // Empty: no memory, nothing to send.
  CHECK(pool.submit(mpi_echo_shared, SharedBytes()).get().empty());
}

TEST_CASE("MpiSharedBytes.MultiMebibyteArgumentsAndResultsCrossWhole" * doctest::timeout(120)) {
  MpiPool pool;
  // Over the channel's 1 MiB chunks, not a multiple of them.
  constexpr size_t kBig = (size_t{5} << 20) + 123;
  SharedBytes big = mpi_pattern(kBig);
  CHECK(pool.submit(mpi_pattern_mismatches, big).get() == 0);
  SharedBytes echoed = pool.submit(mpi_echo_shared, big).get();
  REQUIRE(echoed.size() == kBig);
  CHECK(std::memcmp(echoed.data(), big.data(), kBig) == 0);
  SharedBytes reversed = pool.submit(mpi_reverse, big).get();
  REQUIRE(reversed.size() == kBig);
  CHECK(reversed.bytes()[0] == big.bytes()[kBig - 1]);
  CHECK(reversed.bytes()[kBig - 1] == big.bytes()[0]);
  CHECK(reversed.bytes()[kBig / 2] == big.bytes()[kBig - 1 - kBig / 2]);
  CHECK(mpi_pattern_mismatches(pool.submit(mpi_pattern, (size_t{3} << 20) + 7).get()) == 0);
}

TEST_CASE("MpiSharedBytes.SeveralInOneCallKeepTheirOrder" * doctest::timeout(60)) {
  MpiPool pool;
  std::vector<SharedBytes> parts{SharedBytes::copy_of(std::string_view("one")), SharedBytes(),
                                 SharedBytes::copy_of(std::string(70000, 'b')),
                                 SharedBytes::copy_of(std::string_view("three"))};
  CHECK(pool.submit(mpi_join, parts, std::string("|")).get() == "one||" + std::string(70000, 'b') + "|three|");
  std::vector<SharedBytes> inputs;
  for (size_t n = 1; n <= 40; ++n) inputs.push_back(mpi_pattern(n * 1000));
  // map: many chunks of several SharedBytes each, across both agents.
  CHECK(pool.map(mpi_pattern_mismatches, inputs, 3).get() == std::vector<size_t>(40, 0));
  auto outputs = pool.map(mpi_reverse, inputs, 5).get();
  REQUIRE(outputs.size() == 40);
  for (size_t i = 0; i < 40; ++i) CHECK(outputs[i].size() == inputs[i].size());
}

TEST_CASE("MpiSharedBytes.PayloadAndSharedBytesOverTheLimitTogetherFailWithResourceLimitExceeded" *
          doctest::timeout(60)) {
  MpiPool pool;
  // Each half the limit and a little: alone each would pass.
  size_t each = suite::kMaxMessageBytes / 2 + 4096;
  auto sent = pool.submit(mpi_join, std::vector<SharedBytes>{mpi_pattern(each)}, std::string(each, 's'));
  REQUIRE(sent.ready());  // at once, on the host
  CHECK_THROWS_WITH_AS(sent.get(), doctest::Contains("with the bytes of its SharedBytes"),
                       procpool::ResourceLimitExceeded);
  auto answered = pool.submit(mpi_too_big_together, each);
  CHECK_THROWS_WITH_AS(answered.get(), doctest::Contains("the result with the bytes of its SharedBytes"),
                       procpool::ResourceLimitExceeded);
  CHECK(pool.submit(mpi_pattern_mismatches, mpi_pattern(each)).get() == 0);  // the agents go on
}

TEST_CASE("MpiSharedBytes.ResultsLeaveNoDescriptorBehindOnTheHost" * doctest::timeout(60)) {
  MpiPool pool;
  // A first call (no SharedBytes result: the link thread would hold its
  // memory for a moment after get() returns).
  CHECK(pool.submit(mpi_pattern_mismatches, mpi_pattern(10)).get() == 0);
  size_t before = open_fds();
  for (int i = 0; i < 50; ++i) CHECK(pool.submit(mpi_reverse, mpi_pattern(5000)).get().size() == 5000);
  // The link thread lets go of the last result's memory just after it
  // settles the call, which may be after get() returned.
  for (int i = 0; i < 1000 && open_fds() != before; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(open_fds() == before);
}
