// SPDX-License-Identifier: MIT
#include "task_functions.hpp"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <sstream>
#include <system_error>
#include <thread>

#include <procpool/common/frame.hpp>
#include <procpool/common/worker_segment.hpp>
#include <procpool/worker/worker_loop.hpp>

namespace tasks {

int add(int a, int b) { return a + b; }
void noop() {}
int identity(int x) { return x; }
std::string echo(std::string s) { return s; }
std::vector<unsigned char> echo_bytes(std::vector<unsigned char> b) { return b; }
Point move_point(Point p, double dx) {
  p.x += dx;
  p.label += "+moved";
  return p;
}
std::tuple<int, std::string> swap_pair(std::string s, int i) { return {i, s}; }
std::optional<int> half_if_even(int x) { return x % 2 == 0 ? std::optional<int>(x / 2) : std::nullopt; }
std::variant<int, std::string> int_or_text(bool text) {
  if (text) return std::string("text");
  return 42;
}
std::vector<std::string> split_words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}
Handle make_handle(int v) { return Handle(v); }
std::string make_text(size_t bytes) { return std::string(bytes, 't'); }
double sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
int pid_of_worker() { return static_cast<int>(getpid()); }
int record_run(std::string path, int id) {
  std::ofstream(path, std::ios::app) << id << "\n";
  return id;
}

int throw_kind(std::string kind) {
  if (kind == "invalid_argument") throw std::invalid_argument("bad argument");
  if (kind == "out_of_range") throw std::out_of_range("index 9 out of range");
  if (kind == "logic_error") throw std::logic_error("logic");
  if (kind == "domain_error") throw std::domain_error("domain");
  if (kind == "length_error") throw std::length_error("length");
  if (kind == "runtime_error") throw std::runtime_error("runtime");
  if (kind == "range_error") throw std::range_error("range");
  if (kind == "overflow_error") throw std::overflow_error("overflow");
  if (kind == "underflow_error") throw std::underflow_error("underflow");
  if (kind == "bad_alloc") throw std::bad_alloc();
  if (kind == "bad_cast") throw std::bad_cast();
  if (kind == "system_error") throw std::system_error(ENOENT, std::generic_category(), "opening config");
  if (kind == "quota") throw QuotaExceeded("quota exceeded", "alice", 42);
  if (kind == "unregistered") throw UnregisteredError("not registered anywhere");
  if (kind == "int") throw 42;
  if (kind == "vector_at") return std::vector<int>{}.at(3);
  return 0;
}

namespace {
volatile bool g_bottom = false;  // never set: the recursion only ends in overflow
int recurse(int depth) {
  volatile char pad[4096];
  pad[0] = static_cast<char>(depth);
  if (g_bottom) return 0;
  return recurse(depth + 1) + pad[0];
}
}  // namespace

// No UBSan here: the null store must reach the CPU and fault, in every build.
__attribute__((no_sanitize("undefined"))) int crash(std::string how) {
  if (how == "segv") {
    volatile int* p = nullptr;
    *p = 1;
  }
  if (how == "abort") std::abort();
  if (how == "terminate") std::terminate();
  if (how == "exit3") _exit(3);
  if (how == "exit0") std::exit(0);
  if (how == "stack_overflow") return recurse(0);
  if (how == "sigkill_self") raise(SIGKILL);
  if (how == "hang")
    for (;;) pause();
  return -1;
}

int misbehave(std::string how) {
  using namespace procpool::detail;
  WorkerSegment* seg = current_worker_segment();
  if (!seg) return -1;
  ByteRing ring = seg->response_ring();
  FrameHeader h = make_frame_header(FrameKind::Value, seg->control().running_task.load(), 0);
  if (how == "bad_magic") h.magic = 0xdeadbeef;
  if (how == "bad_kind") h.kind = 99;
  if (how == "unasked_skip") h.kind = static_cast<uint32_t>(FrameKind::Skipped);
  if (how == "wrong_task") h.task_id += 1000;
  if (how == "huge_length") h.length = uint64_t{1} << 62;
  if (how == "dropped_alone") h.kind = static_cast<uint32_t>(FrameKind::Dropped);
  if (how == "partial_header" || how == "header_only") {
    // Part of a header, or a header announcing 100 bytes that never come;
    // then sleep for ever (ringing the doorbell first, as a worker does).
    h.length = 100;
    ring.write_some(&h, how == "partial_header" ? 5 : sizeof h);
    ring.publish();
    ring_host_doorbell();
    for (;;) pause();
  }
  if (how == "partial_header_then_die") {
    // Three bytes of a header, published, then death: the host must not
    // wait for the rest of it.
    ring.write_some(&h, 3);
    ring.publish();
    ring_host_doorbell();
    raise(SIGKILL);
  }
  if (how == "bad_head") {
    seg->header().response.head.store(uint64_t{1} << 40);
  } else if (how == "bad_tail") {
    // The host reads it when it next needs room in the request ring.
    seg->header().request.tail.store(uint64_t{1} << 40);
  } else if (how == "garbage_value") {
    // A Value frame whose payload is a string of forged length.
    uint64_t forged = uint64_t{1} << 40;
    h.length = sizeof forged;
    ring.write_some(&h, sizeof h);
    ring.write_some(&forged, sizeof forged);
    ring.publish();
  } else if (how == "skip_after_part" || how == "parts_over_limit" || how == "small_later_part" ||
             how == "dropped_twice" || how == "empty_part") {
    // A Part of 8 bytes (none for "empty_part"), then: a Skipped answer; a
    // Part that would take the answer past max_message_bytes (1 GiB by
    // default); a second small Part; or Dropped, a Part, and Dropped again.
    FrameHeader part = make_frame_header(FrameKind::Part, h.task_id, how == "empty_part" ? 0 : 8);
    FrameHeader dropped = make_frame_header(FrameKind::Dropped, h.task_id, 0);
    uint64_t bytes = 0;
    auto send_part = [&] {
      ring.write_some(&part, sizeof part);
      ring.write_some(&bytes, part.length);
    };
    send_part();
    if (how == "skip_after_part") {
      h.kind = static_cast<uint32_t>(FrameKind::Skipped);
      ring.write_some(&h, sizeof h);
    } else if (how == "parts_over_limit") {
      h.kind = static_cast<uint32_t>(FrameKind::Part);
      h.length = (uint64_t{1} << 30) - 4;
      ring.write_some(&h, sizeof h);
    } else if (how == "small_later_part") {
      send_part();
    } else if (how == "dropped_twice") {
      ring.write_some(&dropped, sizeof dropped);
      send_part();
      ring.write_some(&dropped, sizeof dropped);
    }
    ring.publish();
  } else if (how == "length_wraps") {
    // A length that makes header plus payload wrap past 2^64 (to 16 bytes),
    // then a string length of 64 MiB: the host once took the frame as a
    // whole answer and read the string far past its ring (a pool with
    // max_message_bytes SIZE_MAX; found by fuzz_response_reader).
    h.length = ~uint64_t{0} - 7;
    uint64_t forged = uint64_t{1} << 26;
    ring.write_some(&h, sizeof h);
    ring.write_some(&forged, sizeof forged);
    ring.publish();
  } else if (how == "malformed_then_forged_next") {
    // A Value for this call too short for its type, then a well-formed
    // Value (an int, 666) for the call after it, which it never began.
    h.length = 3;
    ring.write_some(&h, sizeof h);
    ring.write_some("abc", 3);
    int forged = 666;
    FrameHeader next = make_frame_header(FrameKind::Value, h.task_id + 1, sizeof forged);
    ring.write_some(&next, sizeof next);
    ring.write_some(&forged, sizeof forged);
    ring.publish();
  } else if (how == "short_map_answer") {
    // The answer to a map chunk of several calls, holding one int result.
    struct {
      uint64_t count = 1;
      int value = 7;
    } __attribute__((packed)) one;
    h.length = sizeof one;
    ring.write_some(&h, sizeof h);
    ring.write_some(&one, sizeof one);
    ring.publish();
  } else {
    ring.write_some(&h, sizeof h);
    ring.publish();
  }
  ring_host_doorbell();
  for (;;) pause();
}

int throw_broken_fields() { throw BrokenFields("broken fields"); }
std::string misbehave_text(std::string how) { return std::to_string(misbehave(std::move(how))); }

HalfSaved half_saved(size_t bytes) { return HalfSaved{std::string(bytes, 'h')}; }

std::vector<Tag> make_tags(int n) { return std::vector<Tag>(static_cast<size_t>(n)); }
int throw_long_message(size_t bytes) { throw std::runtime_error(std::string(bytes, 'm')); }

}  // namespace tasks

PROCPOOL_REGISTER_AS("make_tags", tasks::make_tags);
PROCPOOL_REGISTER_AS("throw_long_message", tasks::throw_long_message);
PROCPOOL_REGISTER_AS("half_saved", tasks::half_saved);
PROCPOOL_REGISTER_AS("throw_broken_fields", tasks::throw_broken_fields);
PROCPOOL_REGISTER_AS("misbehave_text", tasks::misbehave_text);
PROCPOOL_REGISTER_EXCEPTION(tasks::BrokenFields);
PROCPOOL_REGISTER_AS("add", tasks::add);
PROCPOOL_REGISTER_AS("noop", tasks::noop);
PROCPOOL_REGISTER_AS("identity", tasks::identity);
PROCPOOL_REGISTER_AS("echo", tasks::echo);
PROCPOOL_REGISTER_AS("echo_bytes", tasks::echo_bytes);
PROCPOOL_REGISTER_AS("move_point", tasks::move_point);
PROCPOOL_REGISTER_AS("swap_pair", tasks::swap_pair);
PROCPOOL_REGISTER_AS("half_if_even", tasks::half_if_even);
PROCPOOL_REGISTER_AS("int_or_text", tasks::int_or_text);
PROCPOOL_REGISTER_AS("split_words", tasks::split_words);
PROCPOOL_REGISTER_AS("make_handle", tasks::make_handle);
PROCPOOL_REGISTER_AS("make_text", tasks::make_text);
PROCPOOL_REGISTER_AS("sleep_ms", tasks::sleep_ms);
PROCPOOL_REGISTER_AS("pid_of_worker", tasks::pid_of_worker);
PROCPOOL_REGISTER_AS("record_run", tasks::record_run);
PROCPOOL_REGISTER_AS("throw_kind", tasks::throw_kind);
PROCPOOL_REGISTER_AS("crash", tasks::crash);
PROCPOOL_REGISTER_AS("misbehave", tasks::misbehave);
PROCPOOL_REGISTER_EXCEPTION(tasks::QuotaExceeded);

namespace tasks {
int pid_of_worker_after(int) { return static_cast<int>(getpid()); }
long resident_bytes() {
  long size = 0, resident = 0;
  std::ifstream("/proc/self/statm") >> size >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}
}  // namespace tasks
PROCPOOL_REGISTER_AS("pid_of_worker_after", tasks::pid_of_worker_after);
PROCPOOL_REGISTER_AS("resident_bytes", tasks::resident_bytes);
