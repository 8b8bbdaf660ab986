// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <thread>

#include "support/census.hpp"
#include "support/task_functions.hpp"

TEST_CASE("Payloads.StandardAndUserTypesRoundTrip" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 2});
  CHECK(pool.submit(tasks::move_point, tasks::Point{1, 2, "p"}, 0.5).get() == tasks::Point{1.5, 2, "p+moved"});
  CHECK(pool.submit(tasks::swap_pair, "s", 4).get() == std::tuple<int, std::string>{4, "s"});
  CHECK(pool.submit(tasks::half_if_even, 8).get() == 4);
  CHECK(pool.submit(tasks::half_if_even, 7).get() == std::nullopt);
  CHECK(std::get<int>(pool.submit(tasks::int_or_text, false).get()) == 42);
  CHECK(std::get<std::string>(pool.submit(tasks::int_or_text, true).get()) == "text");
  CHECK(pool.submit(tasks::split_words, "a bb  ccc").get() == std::vector<std::string>{"a", "bb", "ccc"});
  CHECK(pool.submit(tasks::echo, std::string()).get().empty());
}

// Empty containers hand their (null) data pointer to the archive and the
// ring: the UBSan build fails this case if a null pointer reaches memcpy.
TEST_CASE("Payloads.EmptyPayloadsOfEveryKindRoundTrip" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1});
  CHECK(pool.submit(tasks::echo, std::string()).get() == "");
  CHECK(pool.submit(tasks::echo_bytes, std::vector<unsigned char>()).get().empty());
  CHECK(pool.submit(tasks::split_words, "").get().empty());
  CHECK(pool.submit(tasks::make_tags, 0).get().empty());
  CHECK(pool.submit(tasks::swap_pair, std::string(), 0).get() == std::tuple<int, std::string>{0, ""});
  CHECK(pool.map(tasks::echo, std::vector<std::string>(3)).get() == std::vector<std::string>(3));
  CHECK(pool.map(tasks::identity, std::vector<int>()).get().empty());
}

TEST_CASE("Payloads.VoidResultsComplete" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1});
  auto f = pool.submit(tasks::noop);
  f.get();
  CHECK(f.ready());
}

TEST_CASE("Payloads.MoveOnlyResultsAreMovedOut" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1});
  auto f = pool.submit(tasks::make_handle, 9);
  tasks::Handle h = f.get();
  CHECK(h.value == 9);
  CHECK_THROWS_WITH_AS(f.get(), doctest::Contains("already taken"), procpool::Error);
}

TEST_CASE("Payloads.SixtyFourMebibytesRoundTripByteForByte" * doctest::timeout(120)) {
  procpool::ProcessPool pool({.workers = 1});
  std::vector<unsigned char> data(size_t{64} << 20);
  std::mt19937_64 rng(7);
  for (size_t i = 0; i < data.size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(&data[i], &v, 8);
  }
  auto back = pool.submit(tasks::echo_bytes, data).get();
  REQUIRE(back.size() == data.size());
  CHECK(back == data);
}

namespace {
[[maybe_unused]] long rss_kib(pid_t pid) {  // unused under sanitizers
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}
}  // namespace

TEST_CASE("Payloads.AWorkerHoldsNoMemoryOfLargeCallsOnceTheyAreAnswered" * doctest::timeout(60)) {
  // Calls and answers larger than the ring stream through it: the worker
  // keeps no buffer of them. (A sanitizer's allocator keeps freed memory
  // for itself: RSS says nothing there.)
  procpool::ProcessPool pool({.workers = 1, .ring_bytes = size_t{1} << 20});
  pid_t worker = pool.worker_pids().at(0);
  std::vector<unsigned char> data(size_t{48} << 20, 0x5a);  // larger than glibc's largest mmap threshold
  for (int i = 0; i < 3; ++i) CHECK(pool.submit(tasks::echo_bytes, data).get().size() == data.size());
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  CHECK(census::eventually([&] { return rss_kib(worker) < 16 * 1024; }));
#else
  (void)worker;
#endif
}

TEST_CASE("Payloads.TheHostKeepsALargeAnswersBufferOnlyWhileItIsInUse" * doctest::timeout(60)) {
  // Answers larger than the ring are reassembled in a buffer the host keeps
  // for the next one, and gives back once unused for 100 ms.
  procpool::ProcessPool pool({.workers = 1, .ring_bytes = size_t{1} << 20});
  std::vector<unsigned char> data(size_t{48} << 20, 0x5a);  // larger than glibc's largest mmap threshold
  pool.submit(tasks::echo_bytes, std::vector<unsigned char>(16, 1)).get();  // the pool's own start-up memory
  long before = rss_kib(getpid());
  for (int i = 0; i < 3; ++i) CHECK(pool.submit(tasks::echo_bytes, data).get().size() == data.size());
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  CHECK(census::eventually([&] { return rss_kib(getpid()) < before + 16 * 1024; }));
#else
  (void)before;
#endif
}

TEST_CASE("Payloads.CallsAndAnswersThatWrapPastTheRingsEndAreReadWhereTheyLie" * doctest::timeout(60)) {
  // Frames of many sizes in a small ring: most calls and answers are whole
  // in the ring when read, and many of them wrap past its end.
  procpool::ProcessPool pool({.workers = 1, .ring_bytes = 4096});
  for (size_t i = 0; i < 300; ++i) {
    std::string text(1 + (i * 397) % 1900, ' ');
    for (size_t j = 0; j < text.size(); ++j) text[j] = static_cast<char>('a' + (i + j) % 26);
    REQUIRE(pool.submit(tasks::echo, text).get() == text);
  }
}

TEST_CASE("Payloads.AMapChunksAnswerMayStreamOutBeforeItsCallHasStreamedIn" * doctest::timeout(60)) {
  // The chunk's first results fill the response ring while the host is
  // still sending the rest of the chunk: their parts answer a call not yet
  // wholly sent.
  procpool::ProcessPool pool({.workers = 1, .ring_bytes = 4096});
  std::vector<std::string> in(8, std::string(64 << 10, 'x'));
  for (size_t i = 0; i < in.size(); ++i) in[i][i] = 'y';
  CHECK(pool.map(tasks::echo, in, 8).get() == in);
}

TEST_CASE("Payloads.AnswersThatFillTheRingToExactlyAHeaderOfRoomStayInStep" * doctest::timeout(60)) {
  // With the reactor held back, answers pile up in the ring: 14 frames of
  // 272 bytes and one of 264 leave room for one header and no more.
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  procpool::ProcessPool pool({.workers = 1, .ring_bytes = 4096, .io_context = &io});
  std::vector<procpool::Future<std::string>> fs;
  for (int i = 0; i < 14; ++i) fs.push_back(pool.submit(tasks::make_text, size_t{240}));
  fs.push_back(pool.submit(tasks::make_text, size_t{232}));
  fs.push_back(pool.submit(tasks::make_text, size_t{100}));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::thread reactor([&] { io.run(); });
  for (auto& f : fs) CHECK_NOTHROW(f.get());
  work.reset();
  io.stop();
  reactor.join();
}

namespace {
[[maybe_unused]] long minor_faults_of_this_thread() {
  rusage usage{};
  getrusage(RUSAGE_THREAD, &usage);
  return usage.ru_minflt;
}
}  // namespace

TEST_CASE("Payloads.ALargeCallIsEncodedIntoTheBufferOfTheLargeCallBefore" * doctest::timeout(60)) {
  // A submit encodes its call on the caller's thread. The first large one
  // fills fresh pages; the next, within 100 ms of the first's answer, the
  // same ones again.
  procpool::ProcessPool pool({.workers = 1, .ring_bytes = size_t{1} << 20});
  std::vector<unsigned char> data(size_t{16} << 20, 0x5a);  // 4,096 pages
  long before = minor_faults_of_this_thread();
  auto first = pool.submit(tasks::echo_bytes, data);
  long first_faults = minor_faults_of_this_thread() - before;
  CHECK(first.get().size() == data.size());
  // The keep lasts 100 ms from the answer, and on a loaded machine taking
  // a 16 MiB answer can outlast it: a later call, right after the answer
  // before it, gets another chance (each answer keeps its frame anew).
  long second_faults = 0;
  for (int attempt = 0; attempt < 5; ++attempt) {
    before = minor_faults_of_this_thread();
    auto second = pool.submit(tasks::echo_bytes, data);
    second_faults = minor_faults_of_this_thread() - before;
    CHECK(second.get().size() == data.size());
    if (second_faults < 1000) break;
  }
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  CHECK(first_faults > 4000);
  CHECK(second_faults < 1000);
#else
  (void)first_faults, (void)second_faults;  // a sanitizer's allocator has its own ways
#endif
}

TEST_CASE("Payloads.LargerThanTheRingStreamsThrough" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 2, .ring_bytes = 4096});
  std::string text(1 << 20, 'x');
  for (size_t i = 0; i < text.size(); ++i) text[i] = static_cast<char>('a' + i % 26);
  std::vector<procpool::Future<std::string>> fs;
  for (int i = 0; i < 8; ++i) fs.push_back(pool.submit(tasks::echo, text));
  for (auto& f : fs) CHECK(f.get() == text);
}

namespace {
// A short argument names a file to note the run in, and then the worker
// dies; a long one is padding that makes the frame stream.
size_t note_then_die(std::string arg) {
  if (arg.size() > 4096) return arg.size();
  std::ofstream(arg, std::ios::app) << "ran\n";
  std::abort();
}
PROCPOOL_REGISTER(note_then_die);

size_t lines_in(const std::string& path) {
  std::ifstream in(path);
  return static_cast<size_t>(std::count(std::istreambuf_iterator<char>(in), {}, '\n'));
}
}  // namespace

TEST_CASE("Payloads.AStreamingCallThatIsWithdrawnOrThrowsIsReadPastInStep" * doctest::timeout(60)) {
  // The worker decodes a call larger than its ring as it arrives: one it
  // does not decode to the end (withdrawn, or stopped by an exception) must
  // still be read to its end, or the next frame would be read from its middle.
  procpool::ProcessPool pool({.workers = 1, .ring_bytes = 4096});
  std::string big(1 << 20, 'b');
  auto busy = pool.submit(tasks::sleep_ms, 300);
  auto withdrawn = pool.submit(tasks::echo, big);  // handed to the worker: its head is in the ring
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  withdrawn.cancel();
  CHECK_THROWS_AS(withdrawn.get(), procpool::TaskCancelled);
  busy.get();
  CHECK(pool.submit(tasks::echo, std::string(5000, 'e')).get() == std::string(5000, 'e'));
  // A chunk whose first call throws: the rest of its frame is not decoded.
  std::vector<std::string> kinds{"invalid_argument", big, big};
  CHECK_THROWS_WITH_AS(pool.map(tasks::throw_kind, kinds, 3).get(), "bad argument", std::invalid_argument);
  CHECK(pool.submit(tasks::echo, std::string(5000, 'f')).get() == std::string(5000, 'f'));
}

TEST_CASE("Payloads.AChunkThatCrashesBeforeItHasAllArrivedIsNotRunAgain" * doctest::timeout(60)) {
  // A map chunk's first call runs while the rest of the frame still streams
  // in; the worker dies in it. The call has run, so the chunk fails and is
  // not sent to the replacement (where it would run again, and die again).
  procpool::ProcessPool pool({.workers = 1, .ring_bytes = 4096});
  std::string path = "/tmp/procpool-test-stream-crash-" + std::to_string(getpid());
  std::remove(path.c_str());
  std::vector<std::string> inputs{path, std::string(1 << 20, 'p')};
  CHECK_THROWS_AS(pool.map(note_then_die, inputs, 2).get(), procpool::WorkerCrashed);
  CHECK(pool.submit(tasks::echo, std::string(5000, 'e')).get().size() == 5000);  // served by the replacement
  CHECK(lines_in(path) == 1);
  std::remove(path.c_str());
}

TEST_CASE("Payloads.OversizedCallFailsAtOnceWithTheLimit" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1, .max_message_bytes = 1024});
  try {
    pool.submit(tasks::echo, std::string(2000, 'x')).get();
    FAIL("expected ResourceLimitExceeded");
  } catch (const procpool::ResourceLimitExceeded& e) {
    CHECK(e.limit() == "max_message_bytes");
    CHECK(e.maximum() == 1024);
    CHECK(e.value() > 2000);
    CHECK(std::string(e.what()).find("the call of 'echo'") != std::string::npos);
  }
  CHECK(pool.submit(tasks::echo, std::string(10, 'x')).get().size() == 10);
}

TEST_CASE("Payloads.OversizedResultFailsInTheWorkerWithTheLimit" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1, .max_message_bytes = 1024});
  try {
    pool.submit(tasks::make_text, size_t{5000}).get();
    FAIL("expected ResourceLimitExceeded");
  } catch (const procpool::ResourceLimitExceeded& e) {
    CHECK(e.limit() == "max_message_bytes");
    CHECK(std::string(e.what()).find("the result of 'make_text'") != std::string::npos);
  }
  CHECK(pool.submit(tasks::make_text, size_t{100}).get().size() == 100);
}

TEST_CASE("Payloads.AResultPastTheLimitThatStreamsInPartsFailsWithTheLimit" * doctest::timeout(60)) {
  // Larger than the ring, so the worker sends parts of it before it knows
  // the whole size: it stops at the limit and drops them, and stays.
  procpool::ProcessPool pool({.workers = 1, .ring_bytes = 4096, .max_message_bytes = 64 << 10});
  pid_t worker = pool.worker_pids().at(0);
  try {
    pool.submit(tasks::make_text, size_t{1} << 20).get();
    FAIL("expected ResourceLimitExceeded");
  } catch (const procpool::ResourceLimitExceeded& e) {
    CHECK(e.limit() == "max_message_bytes");
    CHECK(e.value() > (size_t{1} << 20));
    CHECK(std::string(e.what()).find("the result of 'make_text'") != std::string::npos);
  }
  CHECK(pool.submit(tasks::make_text, size_t{50000}).get().size() == 50000);  // twelve ring-fulls, in parts
  CHECK(pool.worker_pids().at(0) == worker);
}

TEST_CASE("Payloads.ResultThatFailsToEncodeGivesSerializationError" * doctest::timeout(60)) {
  // Small results fail inside the ring, large ones after parts of them went
  // out: either way the half-written answer is dropped and the ring stays sound.
  procpool::ProcessPool pool({.workers = 1, .ring_bytes = 4096});
  for (size_t bytes : {size_t{10}, size_t{3000}, size_t{1} << 20}) {
    CAPTURE(bytes);
    CHECK_THROWS_WITH_AS(pool.submit(tasks::half_saved, bytes).get(),
                         "'half_saved': the result could not be encoded: cannot save the rest",
                         procpool::SerializationError);
    CHECK(pool.submit(tasks::echo, std::string(5000, 'e')).get() == std::string(5000, 'e'));
  }
}

namespace {
size_t size_of_half_saved(tasks::HalfSaved h) { return h.big.size(); }
PROCPOOL_REGISTER(size_of_half_saved);
}  // namespace

TEST_CASE("Payloads.ArgumentsThatFailToEncodeFailTheCallWithSerializationError" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1});
  CHECK_THROWS_WITH_AS(pool.submit(size_of_half_saved, tasks::HalfSaved{"abc"}).get(),
                       "'size_of_half_saved': the arguments could not be encoded: cannot save the rest",
                       procpool::SerializationError);
  CHECK(pool.submit(tasks::add, 2, 3).get() == 5);
}

TEST_CASE("Payloads.AnswersThatDropTheirPartsComeOneAfterAnother" * doctest::timeout(60)) {
  // Each drops the parts it sent and answers with the error instead, which
  // is small: the worker is as sound after the second as after the first.
  procpool::ProcessPool pool({.workers = 1, .ring_bytes = 4096});
  pid_t worker = pool.worker_pids().at(0);
  for (int i = 0; i < 3; ++i)
    CHECK_THROWS_AS(pool.submit(tasks::half_saved, size_t{1} << 20).get(), procpool::SerializationError);
  CHECK(pool.worker_pids().at(0) == worker);
}

TEST_CASE("Payloads.ContainersOfEmptyElementsRoundTrip" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1});
  pid_t worker = pool.worker_pids().at(0);
  CHECK(pool.submit(tasks::make_tags, 300).get().size() == 300);
  CHECK(pool.worker_pids().at(0) == worker);  // a healthy worker is not blamed
}

TEST_CASE("Payloads.OversizedExceptionIsCutToTheLimit" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1, .max_message_bytes = 4096});
  pid_t worker = pool.worker_pids().at(0);
  try {
    pool.submit(tasks::throw_long_message, size_t{5000}).get();
    FAIL("expected std::runtime_error");
  } catch (const std::runtime_error& e) {
    CHECK(typeid(e) == typeid(std::runtime_error));
    CHECK(std::string(e.what()).size() < 4096);
    CHECK(std::string(e.what()).find("mmmm") == 0);
  }
  CHECK(pool.worker_pids().at(0) == worker);
}
