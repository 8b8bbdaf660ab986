// SPDX-License-Identifier: MIT
#pragma once
// Task functions shared by every suite: well-behaved ones and the
// misbehaving ones (crash, throw, hang, write garbage) the suites aim at
// the pool. All are registered in task_functions.cpp.
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include <procpool/procpool.hpp>

namespace tasks {

// A user exception with fields, registered with PROCPOOL_REGISTER_EXCEPTION.
struct QuotaExceeded : std::runtime_error {
  QuotaExceeded() : std::runtime_error("") {}
  QuotaExceeded(std::string what, std::string user, int used)
      : std::runtime_error(std::move(what)), user(std::move(user)), used(used) {}
  std::string user;
  int used = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(user, used);
  }
};

// Not registered: arrives as a std::logic_error that is a procpool::RemoteOrigin.
struct UnregisteredError : std::logic_error {
  using std::logic_error::logic_error;
};

struct Point {
  double x = 0, y = 0;
  std::string label;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(x, y, label);
  }
  bool operator==(const Point&) const = default;
};

// Move-only result type.
struct Handle {
  Handle() = default;
  explicit Handle(int v) : value(v) {}
  Handle(Handle&&) = default;
  Handle& operator=(Handle&&) = default;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  int value = 0;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(value);
  }
};

int add(int a, int b);
void noop();
int identity(int x);
std::string echo(std::string s);
std::vector<unsigned char> echo_bytes(std::vector<unsigned char> b);
Point move_point(Point p, double dx);
std::tuple<int, std::string> swap_pair(std::string s, int i);
std::optional<int> half_if_even(int x);
std::variant<int, std::string> int_or_text(bool text);
std::vector<std::string> split_words(const std::string& s);
Handle make_handle(int v);
std::string make_text(size_t bytes);
double sleep_ms(int ms);
int pid_of_worker();
// Appends `id` to the file `path` (one line per run) and returns it: lets a
// test count how many times each call ran.
int record_run(std::string path, int id);

// Throws the exception named by `kind` ("invalid_argument", "bad_alloc",
// "quota", "unregistered", "int", "system_error", ...).
int throw_kind(std::string kind);

// Dies in the way named by `how`: "segv", "abort", "terminate", "exit3",
// "exit0", "stack_overflow", "sigkill_self", "hang" (sleeps until killed).
int crash(std::string how);

// Writes a forged frame into this worker's response ring the way a broken
// worker would ("bad_magic", "bad_kind", "wrong_task", "huge_length",
// "bad_head", "bad_tail", "garbage_value", "dropped_alone",
// "skip_after_part", "parts_over_limit", "small_later_part",
// "dropped_twice", "empty_part"; "partial_header": 5 bytes of a header;
// "header_only": a header whose payload never comes;
// "malformed_then_forged_next": a malformed answer to this call, then an int
// answer to the next call's task id), then hangs until killed.
int misbehave(std::string how);

}  // namespace tasks

namespace tasks {
// A registered exception whose fields cannot be encoded.
struct BrokenFields : std::runtime_error {
  BrokenFields() : std::runtime_error("") {}
  explicit BrokenFields(const std::string& what) : std::runtime_error(what) {}
  template <class Archive>
  void save(Archive&) const {
    throw std::runtime_error("these fields cannot be saved");
  }
  template <class Archive>
  void load(Archive&) {}
};
int throw_broken_fields();
// misbehave() for a call whose result is a string (so the host decodes a
// forged string length).
std::string misbehave_text(std::string how);
}  // namespace tasks

namespace tasks {
// A result whose encoding fails half-way, after `big` was written.
struct HalfSaved {
  std::string big;
  template <class Archive>
  void save(Archive& ar) const {
    ar(big);
    throw std::runtime_error("cannot save the rest");
  }
  template <class Archive>
  void load(Archive& ar) {
    ar(big);
  }
};
HalfSaved half_saved(size_t bytes);
}  // namespace tasks

namespace tasks {
struct Tag {  // an empty type: zero bytes on the wire
  template <class Archive>
  void serialize(Archive&) {}
};
std::vector<Tag> make_tags(int n);
// Throws a std::runtime_error whose message is `bytes` long.
int throw_long_message(size_t bytes);
}  // namespace tasks

namespace tasks {
// Workers' lives.
int pid_of_worker_after(int x);  // the worker's pid, for map (one argument)
long resident_bytes();           // this worker's RSS, from /proc/self/statm
}  // namespace tasks
