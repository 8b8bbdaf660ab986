// SPDX-License-Identifier: MIT
// decode_exception over arbitrary bytes: an Exception frame's records as a
// worker may forge them (types that are registered or not, fields that do
// not load, nesting too deep, truncated strings). Each input must either
// rebuild an exception chain, which is then walked as a user would, or
// throw DecodeError; nothing else, and no crash, leak or undefined behaviour.
#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>
#include <system_error>

#include <procpool/common/archive.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/common/exception_codec.hpp>

#include "seeds.hpp"

using namespace procpool;
using namespace procpool::detail;

namespace {

// What a caller of future.get() does with the exception: its what(), its
// RemoteOrigin, and every level it nests.
void walk(std::exception_ptr e) {
  for (int depth = 0; e; ++depth) {
    if (depth > static_cast<int>(kMaxNesting)) __builtin_trap();  // the decoder allows no deeper chain
    std::exception_ptr next;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      volatile size_t n = std::string(ex.what()).size();
      (void)n;
      if (auto* origin = dynamic_cast<const RemoteOrigin*>(&ex)) {
        n = origin->type_name().size() + origin->message().size() + origin->backtrace().size();
      }
      if (auto* nested = dynamic_cast<const std::nested_exception*>(&ex)) next = nested->nested_ptr();
    } catch (...) {
      __builtin_trap();  // every level rebuilt derives from std::exception
    }
    e = next;
  }
}

ByteBuffer encode(void (*raise)()) {
  ByteBuffer out;
  try {
    raise();
  } catch (...) {
    encode_current_exception(out, "#0 0x1 in lucky_number", 1 << 20);
  }
  return out;
}

void write_seeds(const std::string& dir) {
  using fuzz::write_seed;
  write_seed(dir, "invalid_argument", encode([] { throw std::invalid_argument("Unlucky number!"); }));
  write_seed(dir, "system_error",
             encode([] { throw std::system_error(std::make_error_code(std::errc::timed_out), "poll"); }));
  write_seed(dir, "nested", encode([] {
               try {
                 throw std::out_of_range("inner");
               } catch (...) {
                 std::throw_with_nested(std::runtime_error("outer"));
               }
             }));
  write_seed(dir, "int", encode([] { throw 42; }));
  write_seed(dir, "c_string", encode([] { throw "boom"; }));
  write_seed(dir, "procpool_error", encode([] { throw ResourceLimitExceeded("memory", 10, 5, "a test"); }));
  struct Local : std::length_error {
    Local() : std::length_error("local") {}
  };
  write_seed(dir, "unregistered_derived", encode([] { throw Local(); }));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  fuzz::write_seeds_if_asked(*argc, *argv, write_seeds);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  InputArchive in(reinterpret_cast<const std::byte*>(data), size);
  std::exception_ptr e;
  try {
    e = decode_exception(in, "fuzzed", 4242);
  } catch (const DecodeError&) {
    return 0;  // a malformed record: the host's ProtocolError
  }
  if (!e) __builtin_trap();
  walk(e);
  return 0;
}
