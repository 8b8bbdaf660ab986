// SPDX-License-Identifier: MIT
// SharedBytes: immutable shared-memory bytes that cross to a worker and
// back by descriptor, not by copy; sealed, so neither side can change them.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <numeric>
#include <string>
#include <vector>

#include <procpool/common/handle_channel.hpp>
#include <procpool/worker/worker_loop.hpp>

#include "support/census.hpp"
#include "support/task_functions.hpp"

namespace {

using procpool::SharedBytes;

SharedBytes echo_shared(SharedBytes b) { return b; }
PROCPOOL_REGISTER(echo_shared);

// A fresh buffer made in the worker: n bytes of `c`.
SharedBytes fill_shared(size_t n, char c) {
  return SharedBytes::make(n, [&](std::span<std::byte> out) { std::memset(out.data(), c, out.size()); });
}
PROCPOOL_REGISTER(fill_shared);

SharedBytes bytes_of(int n) { return SharedBytes::copy_of(std::string(static_cast<size_t>(n), 'x')); }
PROCPOOL_REGISTER(bytes_of);

long sum_shared(SharedBytes b) {
  long sum = 0;
  for (std::byte x : b.bytes()) sum += static_cast<long>(x);
  return sum;
}
PROCPOOL_REGISTER(sum_shared);

std::string join_shared(std::vector<SharedBytes> parts) {
  std::string all;
  for (auto& p : parts) all += p.view();
  return all;
}
PROCPOOL_REGISTER(join_shared);

// A worker that breaks the channel's rules, as a hostile one could: it
// answers with a Value frame that refers to one SharedBytes and then
// sends (or does not send) a descriptor that is not a sealed memfd.
long forge_shared(std::string how) {
  using namespace procpool::detail;
  WorkerSegment* seg = current_worker_segment();
  int sock = current_handle_socket();
  if (!seg || sock < 0) return -1;
  TaskId task = seg->control().running_task.load();
  if (how != "no_descriptor") {
    int fd = how == "not_memfd" ? open("/dev/zero", O_RDONLY | O_CLOEXEC) : memfd_create("forged", MFD_CLOEXEC);
    if (how != "not_memfd" && ftruncate(fd, 4096) != 0) return -2;
    if (how == "wrong_task") task += 1000;
    auto memory = std::make_shared<const SealedMemory>(fd, nullptr, 4096);  // only carries the descriptor
    HandleList one{memory};
    if (send_handles(sock, task, one) != 0) return -3;
    task = seg->control().running_task.load();
  }
  ByteRing ring = seg->response_ring();
  struct {
    uint64_t size = 4096;
    uint32_t index = 0;
  } __attribute__((packed)) payload;
  FrameHeader h = make_frame_header(FrameKind::Value, task, sizeof payload, 1);
  ring.write_some(&h, sizeof h);
  ring.write_some(&payload, sizeof payload);
  ring.publish();
  ring_host_doorbell();
  for (;;) pause();
}
PROCPOOL_REGISTER(forge_shared);

size_t padded_size(std::string padding, SharedBytes b) { return padding.size() + b.size(); }
PROCPOOL_REGISTER(padded_size);
size_t slow_padded_size(std::string padding, SharedBytes b) {
  usleep(100'000);
  return padding.size() + b.size();
}
PROCPOOL_REGISTER(slow_padded_size);

ino_t inode_of(const SharedBytes& b) {
  struct stat st {};
  REQUIRE(fstat(b.memory()->fd(), &st) == 0);
  return st.st_ino;
}

SharedBytes pattern(size_t n) {
  return SharedBytes::make(n, [](std::span<std::byte> out) {
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<std::byte>(i * 131 % 251);
  });
}

}  // namespace

TEST_CASE("SharedBytes.MakeFillsTheBytesAndSealsThem") {
  SharedBytes b = pattern(10000);
  REQUIRE(b.size() == 10000);
  CHECK(b.data()[7] == static_cast<std::byte>(7 * 131 % 251));
  // Nobody, the maker included, can map it writable, shrink or grow it.
  int fd = b.memory()->fd();
  CHECK(mmap(nullptr, b.size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
  CHECK(ftruncate(fd, 10) != 0);
  CHECK(ftruncate(fd, 1 << 20) != 0);
  CHECK(pwrite(fd, "x", 1, 0) != 1);
  CHECK(SharedBytes::copy_of(std::string_view("hello")).view() == "hello");
  CHECK(SharedBytes().empty());
  CHECK(SharedBytes::copy_of(std::string_view()).memory() == nullptr);  // empty: no descriptor
}

TEST_CASE("SharedBytes.CopyOfHoldsEveryByteAndIsSealedLikeMake") {
  // copy_of writes with pwrite(2), not through a mapping: a size that is not
  // a whole number of pages, every byte compared.
  std::vector<std::byte> source((3 << 20) + 17);
  for (size_t i = 0; i < source.size(); ++i) source[i] = static_cast<std::byte>(i * 7 % 253);
  SharedBytes b = SharedBytes::copy_of(std::span<const std::byte>(source));
  REQUIRE(b.size() == source.size());
  CHECK(std::memcmp(b.data(), source.data(), source.size()) == 0);
  int fd = b.memory()->fd();
  CHECK(mmap(nullptr, b.size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
  CHECK(pwrite(fd, "x", 1, 0) != 1);
  CHECK(ftruncate(fd, 10) != 0);
}

// A process forked between make()'s writable mmap and its MADV_DONTFORK (a
// pool forking a replacement worker meanwhile) holds that writable mapping
// for its whole life, and the seal used to fail with EBUSY, so make() threw
// (found by the soak: 2 in 2,238 makes while workers were being replaced).
TEST_CASE("SharedBytes.MakeSealsEvenIfAProcessForkedMeanwhileHoldsTheWritableMapping" * doctest::timeout(60)) {
  static pid_t child;
  child = -1;
  procpool::detail::writable_map_race_for_tests = [] {
    child = ::fork();
    if (child == 0)
      for (;;) ::pause();  // keeps the inherited mapping until killed
  };
  SharedBytes b;
  CHECK_NOTHROW(b = pattern(100000));
  procpool::detail::writable_map_race_for_tests = nullptr;
  REQUIRE(child > 0);
  CHECK(b.size() == 100000);
  CHECK(b.bytes().data() != nullptr);
  CHECK(b.view() == pattern(100000).view());
  int seals = ::fcntl(b.memory()->fd(), F_GET_SEALS);
  CHECK((seals & (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW)) == (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW));
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
}

// A worker that answered with a SharedBytes and died (killed) before the
// host read that answer, leaving buffers of its next calls unread in its
// socket: the kernel reports ECONNRESET once, ahead of the descriptors the
// worker had sent, which used to be read as "never came", the answer a
// ProtocolError (found by the soak: a SIGKILL from outside just after such
// an answer).
TEST_CASE("SharedBytes.DescriptorsSentBeforeTheWorkerDiedArriveThoughItLeftSomeUnread" * doctest::timeout(30)) {
  auto sockets = procpool::detail::make_handle_sockets();
  SharedBytes answer = pattern(5000), unread = pattern(100);
  REQUIRE(procpool::detail::send_handles(sockets.worker, 7, {answer.memory()}) == 0);  // the worker's answer
  REQUIRE(procpool::detail::send_handles(sockets.host, 8, {unread.memory()}) == 0);    // its next call's, never read
  ::close(sockets.worker);                                                             // it dies
  procpool::detail::HandleList got;
  CHECK_NOTHROW(got = procpool::detail::receive_handles(sockets.host, 7, 1, 1 << 20));
  REQUIRE(got.size() == 1);
  CHECK(got[0]->size() == 5000);
  CHECK(std::memcmp(got[0]->data(), answer.data(), 5000) == 0);
  ::close(sockets.host);
}

TEST_CASE("SharedBytes.AWorkerForkedLaterDoesNotInheritTheHostsBuffers" * doctest::timeout(60)) {
  SharedBytes held = pattern(1 << 20);  // made before the workers exist
  procpool::ProcessPool pool({.workers = 1});
  pid_t worker = pool.worker_pids().at(0);
  std::ifstream maps("/proc/" + std::to_string(worker) + "/maps");
  std::string text((std::istreambuf_iterator<char>(maps)), std::istreambuf_iterator<char>());
  REQUIRE(!text.empty());
  CHECK(text.find("procpool-bytes") == std::string::npos);
  CHECK(held.size() == size_t{1} << 20);
}

TEST_CASE("SharedBytes.TravelToAWorkerAndBackWithoutACopy" * doctest::timeout(60)) {
  census::Snapshot before;
  {
    procpool::ProcessPool pool({.workers = 2});
    SharedBytes big = pattern(size_t{8} << 20);  // larger than a ring: it never passes through one
    SharedBytes back = pool.submit(echo_shared, big).get();
    REQUIRE(back.size() == big.size());
    CHECK(std::memcmp(back.data(), big.data(), big.size()) == 0);
    CHECK(inode_of(back) == inode_of(big));  // the same memory, not a copy
    long expected = 0;
    for (std::byte x : big.bytes()) expected += static_cast<long>(x);
    CHECK(pool.submit(sum_shared, big).get() == expected);
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("SharedBytes.AWorkerMakesOnesTheHostReadsAfterTheWorkerIsGone" * doctest::timeout(60)) {
  census::Snapshot before;
  {
    SharedBytes kept;
    {
      procpool::ProcessPool pool({.workers = 1});
      kept = pool.submit(fill_shared, size_t{3} << 20, 'z').get();
    }
    REQUIRE(kept.size() == size_t{3} << 20);
    CHECK(kept.view().find_first_not_of('z') == std::string_view::npos);
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("SharedBytes.SeveralInOneCallKeepTheirOrderAndEmptyOnesCostNothing" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1});
  std::vector<SharedBytes> parts{SharedBytes::copy_of(std::string_view("one ")), SharedBytes(),
                                 SharedBytes::copy_of(std::string_view("two ")),
                                 SharedBytes::copy_of(std::string_view("three"))};
  CHECK(pool.submit(join_shared, parts).get() == "one two three");
  CHECK(pool.submit(echo_shared, SharedBytes()).get().empty());
}

TEST_CASE("SharedBytes.OverTheLimitInOneCallFailsWithResourceLimitExceeded" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1});
  std::vector<SharedBytes> parts(65, SharedBytes::copy_of(std::string_view("x")));
  try {
    pool.submit(join_shared, parts).get();
    FAIL("expected ResourceLimitExceeded");
  } catch (const procpool::ResourceLimitExceeded& e) {
    CHECK(e.limit() == "shared_bytes_per_message");
    CHECK(e.maximum() == 64);
  }
  parts.resize(64);
  CHECK(pool.submit(join_shared, parts).get() == std::string(64, 'x'));
}

TEST_CASE("SharedBytes.CallsQueuedBehindACrashAreResentWithTheirBuffers" * doctest::timeout(60)) {
  census::Snapshot before;
  {
    procpool::ProcessPool pool({.workers = 1});
    auto crash = pool.submit(tasks::crash, std::string("segv"));
    std::vector<SharedBytes> sent;
    std::vector<procpool::Future<SharedBytes>> queued;
    for (int i = 0; i < 10; ++i) {
      sent.push_back(pattern(static_cast<size_t>(1000 + i)));
      queued.push_back(pool.submit(echo_shared, sent.back()));
    }
    CHECK_THROWS_AS(crash.get(), procpool::WorkerCrashed);
    for (size_t i = 0; i < queued.size(); ++i) {
      SharedBytes back = queued[i].get();
      CHECK(back.size() == sent[i].size());
      CHECK(inode_of(back) == inode_of(sent[i]));
    }
  }
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("SharedBytes.CallsLargerThanTheRingSendTheirBuffersOnce" * doctest::timeout(60)) {
  // Each frame streams through a ring smaller than itself, so the host
  // meets a full ring in the middle of sending calls that carry SharedBytes.
  procpool::ProcessPool pool({.workers = 1, .ring_bytes = 4096, .prefetch_per_worker = 8});
  std::vector<procpool::Future<size_t>> calls;
  for (size_t i = 0; i < 40; ++i)
    calls.push_back(pool.submit(padded_size, std::string(10000 + i, 'p'), pattern(100 + i)));
  for (size_t i = 0; i < calls.size(); ++i) CHECK(calls[i].get() == 10100 + 2 * i);
}

TEST_CASE("SharedBytes.ACallThatMeetsAFullRingSendsItsBuffersOnce" * doctest::timeout(60)) {
  // While the worker runs the first call (whose header it has taken off the
  // ring), the second fills the ring to the byte, so the third finds no
  // room at all after its descriptors went: they must not go again when
  // room comes, or the channel is out of step with the frames.
  // A frame is 24 header + 4 id + 8 fingerprint + 8 + L string + 8 + 4 SharedBytes bytes.
  constexpr size_t kRing = 4096, kFixed = 56;
  const size_t first = 2048 - kFixed, second = kRing - (2048 - 24) - kFixed;
  procpool::ProcessPool pool({.workers = 1, .ring_bytes = kRing, .prefetch_per_worker = 8});
  pid_t worker = pool.worker_pids().at(0);
  std::vector<procpool::Future<size_t>> calls;
  calls.push_back(pool.submit(slow_padded_size, std::string(first, 's'), pattern(1)));
  usleep(30'000);  // the worker is in the first call
  calls.push_back(pool.submit(padded_size, std::string(second, 'p'), pattern(1)));
  for (int i = 0; i < 3; ++i) calls.push_back(pool.submit(padded_size, std::string(100, 'p'), pattern(1)));
  CHECK(calls[0].get() == first + 1);
  CHECK(calls[1].get() == second + 1);
  for (size_t i = 2; i < calls.size(); ++i) CHECK(calls[i].get() == 101);
  // A worker out of step exits, and its unstarted calls are re-sent to its
  // replacement: the results alone would not show it.
  CHECK(pool.worker_pids().at(0) == worker);
}

TEST_CASE("SharedBytes.AResultOverMaxMessageBytesFailsWithResourceLimitExceeded" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 1, .max_message_bytes = 1 << 20});
  try {
    pool.submit(fill_shared, size_t{2} << 20, 'a').get();
    FAIL("expected ResourceLimitExceeded");
  } catch (const procpool::ResourceLimitExceeded& e) {
    CHECK(e.limit() == "max_message_bytes");
    CHECK(e.value() == size_t{2} << 20);
  }
  CHECK(pool.submit(fill_shared, size_t{1} << 20, 'b').get().size() == size_t{1} << 20);
}

TEST_CASE("SharedBytes.ManyCallsWithOneBufferLeaveNoDescriptorBehind" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 2});
  SharedBytes b = pattern(4096);
  pool.submit(echo_shared, b).get();
  census::Snapshot before;
  std::vector<procpool::Future<SharedBytes>> calls;
  for (int i = 0; i < 2000; ++i) calls.push_back(pool.submit(echo_shared, b));
  for (auto& f : calls) CHECK(f.get().size() == 4096);
  calls.clear();
  CHECK(census::leaks_since(before) == "");
}

TEST_CASE("SharedBytes.MapCarriesThem" * doctest::timeout(60)) {
  procpool::ProcessPool pool({.workers = 2});
  std::vector<SharedBytes> inputs;
  for (int i = 1; i <= 100; ++i) inputs.push_back(SharedBytes::copy_of(std::string(static_cast<size_t>(i), '\x01')));
  std::vector<long> sums = pool.map(sum_shared, inputs, 10).get();
  REQUIRE(sums.size() == 100);
  for (int i = 0; i < 100; ++i) CHECK(sums[static_cast<size_t>(i)] == i + 1);
  // Left to the pool, chunks stay within the descriptors a frame may carry
  // (3000 inputs over 2 workers would otherwise make chunks of 188).
  std::vector<SharedBytes> many(3000, SharedBytes::copy_of(std::string_view("ab")));
  std::vector<long> all = pool.map(sum_shared, many).get();
  REQUIRE(all.size() == 3000);
  CHECK(all.back() == 'a' + 'b');
  CHECK_THROWS_AS(pool.map(sum_shared, many, 65).get(), procpool::ResourceLimitExceeded);
  // The same for SharedBytes results (each one a descriptor here: few
  // enough for the usual limit of 1024, yet chunks of 75 on one worker).
  procpool::ProcessPool one({.workers = 1});
  std::vector<int> sizes(600, 3);
  std::vector<SharedBytes> made = one.map(bytes_of, sizes).get();
  REQUIRE(made.size() == 600);
  CHECK(made.back().view() == "xxx");
}

namespace {
void forged_answer_is_a_protocol_error(const char* how, const char* message) {
  CAPTURE(how);
  census::Snapshot before;
  {
    procpool::ProcessPool pool({.workers = 1});
    pid_t liar = pool.worker_pids().at(0);
    auto bad = pool.submit(forge_shared, std::string(how));
    auto next = pool.submit(tasks::add, 2, 3);
    try {
      bad.get();
      FAIL("expected ProtocolError");
    } catch (const procpool::ProtocolError& e) {
      CHECK(e.pid() == liar);
      CHECK(std::string(e.what()).find(message) != std::string::npos);
    }
    CHECK(next.get() == 5);
    CHECK(pool.worker_pids().at(0) != liar);
  }
  CHECK(census::leaks_since(before) == "");
}
}  // namespace

TEST_CASE("SharedBytes.AnUnsealedBufferFromAWorkerIsItsProtocolError" * doctest::timeout(60)) {
  forged_answer_is_a_protocol_error("not_memfd", "not a memfd");
  forged_answer_is_a_protocol_error("unsealed", "not sealed against writes");
}

TEST_CASE("SharedBytes.AnAnswerWhoseDescriptorsNeverCameIsItsWorkersProtocolError" * doctest::timeout(60)) {
  forged_answer_is_a_protocol_error("no_descriptor", "never came");
}

TEST_CASE("SharedBytes.DescriptorsOutOfStepWithTheFramesAreAProtocolError" * doctest::timeout(60)) {
  forged_answer_is_a_protocol_error("wrong_task", "out of step");
}
