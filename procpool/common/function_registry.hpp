// SPDX-License-Identifier: MIT
#pragma once
// The table of functions a worker may run, filled before any pool starts.
// Forked workers inherit it, so a function id means the same on both sides.
#include <atomic>
#include <cstdint>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

#include <cereal/types/tuple.hpp>

#include <procpool/common/archive.hpp>
#include <procpool/common/backtrace.hpp>
#include <procpool/common/constructed.hpp>
#include <procpool/common/exception_codec.hpp>
#include <procpool/common/type_name.hpp>

namespace procpool::detail {

using ErasedFn = void (*)();

struct FunctionEntry {
  std::string name;
  std::string signature;  // e.g. "long (int, std::string)"
  uint64_t fingerprint;   // of `signature`; travels with every call
  ErasedFn fn;
  // Decodes the arguments, runs the function and encodes its result. Throws
  // whatever the function throws; DecodeError for malformed arguments (too
  // few bytes, or bytes left after them), before the function runs.
  void (*invoke)(ErasedFn fn, InputArchive& args, OutputArchive& result);
  // The same for a CallMany frame: a ManyMode byte, a size tag n, then n
  // calls. StopAtFirstThrow: the results as a cereal vector (nothing for
  // void); the first call that throws ends the chunk with its exception.
  // EachOutcome: the size tag n, then per call `true` and its result, or
  // `false` and its exception record (exception_codec.hpp) as a size-tagged
  // blob; only arguments that do not decode or a result that does not
  // encode end the chunk (the stream is then out of step). Bytes after the
  // last call's arguments are refused (DecodeError) before it runs.
  void (*invoke_many)(ErasedFn fn, InputArchive& args, OutputArchive& results);
};

class FunctionRegistry {
 public:
  static FunctionRegistry& instance();

  // Throws procpool::Error on a duplicate name, or while a pool is running
  // (its workers were forked with the old table and could not learn the new
  // function).
  uint32_t add(FunctionEntry entry);

  // Lookups take no lock: entries are only added while no pool runs, and a
  // pool's start (a thread launch) orders those writes before its reads.
  const FunctionEntry* find(ErasedFn fn, uint32_t* id) const;
  const FunctionEntry* find(std::string_view name, uint32_t* id) const;
  const FunctionEntry* at(uint32_t id) const noexcept { return id < entries_.size() ? &entries_[id] : nullptr; }
  std::vector<std::string> close_matches(std::string_view name) const;
  size_t size() const noexcept { return entries_.size(); }
  // Of every entry's name and signature, in id order: equal in two
  // processes when an id means the same function in both.
  uint64_t digest() const noexcept;

  void pool_started() noexcept { live_pools_.fetch_add(1, std::memory_order_acq_rel); }
  void pool_stopped() noexcept { live_pools_.fetch_sub(1, std::memory_order_acq_rel); }

 private:
  std::mutex add_mutex_;
  std::vector<FunctionEntry> entries_;
  std::unordered_map<std::string, uint32_t> by_name_;
  std::unordered_map<ErasedFn, uint32_t> by_fn_;
  std::atomic<int> live_pools_{0};
};

template <class R, class... A>
std::string signature_of() {
  std::string s = type_name<std::decay_t<R>>() + " (";
  ((s += type_name<std::decay_t<A>>() + ", "), ...);
  if constexpr (sizeof...(A) > 0) s.resize(s.size() - 2);
  return s + ")";
}

// A function parameter takes its tuple element as an lvalue only when it is
// a non-const lvalue reference; otherwise the element is moved in (no copy
// of a large argument).
template <class P, class T>
decltype(auto) pass_argument(T& value) {
  if constexpr (std::is_lvalue_reference_v<P> && !std::is_const_v<std::remove_reference_t<P>>) return (value);
  else return std::move(value);
}

template <class R, class... A>
R call_registered(ErasedFn erased, std::tuple<std::decay_t<A>...>& args) {
  auto fn = reinterpret_cast<R (*)(A...)>(erased);
  return [&]<size_t... I>(std::index_sequence<I...>)->R { return fn(pass_argument<A>(std::get<I>(args))...); }
  (std::index_sequence_for<A...>{});
}

template <class R>
void encode_result(OutputArchive& out, R& result) {
  try {
    out(result);
  } catch (const std::exception& e) {
    throw EncodeError(e.what());
  }
}

// A request's payload is its arguments and nothing more: bytes left after
// the last call's arguments mean host and worker disagree on the encoding.
// Refused before the function runs, as truncated arguments are.
inline void expect_end_of_arguments(const InputArchive& in) {
  if (in.remaining() != 0) throw DecodeError(std::to_string(in.remaining()) + " stray bytes after the last argument");
}

// Decodes a call's arguments into `args`. An exception an argument type's
// own load() throws is the call's decoding failing, not the function: a
// DecodeError (the host's SerializationError), which the function does not
// run after. Running out of memory stays what it is (a memory limit's
// doing, which the worker reports as such).
template <class Tuple>
void decode_arguments(InputArchive& in, Tuple& args) {
  try {
    in(args);
  } catch (const DecodeError&) {
    throw;
  } catch (const cereal::Exception&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    throw DecodeError("an argument's load() threw " + demangle(typeid(e).name()) + ": " + e.what());
  } catch (...) {
    throw DecodeError("an argument's load() threw an exception of a type not derived from std::exception");
  }
}

// Decodes one call's arguments and runs it; `last`: no byte may follow them.
template <class R, class... A>
void invoke_registered_call(ErasedFn erased, InputArchive& in, OutputArchive& out, bool last) {
  std::tuple<std::decay_t<A>...> args;
  decode_arguments(in, args);
  if (last) expect_end_of_arguments(in);
  if constexpr (std::is_void_v<R>) {
    call_registered<R, A...>(erased, args);
  } else {
    R result = call_registered<R, A...>(erased, args);
    encode_result(out, result);
  }
}

template <class R, class... A>
void invoke_registered(ErasedFn erased, InputArchive& in, OutputArchive& out) {
  invoke_registered_call<R, A...>(erased, in, out, true);
}

enum class ManyMode : uint8_t { StopAtFirstThrow = 0, EachOutcome = 1 };

// An EachOutcome element's exception record is cut to this (its message and
// backtrace first): a chunk of many failures must still fit its answer.
inline constexpr size_t kElementExceptionBytes = size_t{64} << 10;

template <class R, class... A>
void invoke_registered_outcome(ErasedFn erased, InputArchive& in, OutputArchive& out, ByteBuffer& error, bool last) {
  std::tuple<std::decay_t<A>...> args;
  decode_arguments(in, args);
  if (last) expect_end_of_arguments(in);
  std::optional<std::conditional_t<std::is_void_v<R>, bool, R>> result;
  error.clear();
  try {
    if constexpr (std::is_void_v<R>) {
      call_registered<R, A...>(erased, args);
      result.emplace(true);
    } else {
      result.emplace(call_registered<R, A...>(erased, args));
    }
  } catch (...) {
    encode_current_exception(error, last_throw_backtrace(), kElementExceptionBytes);
  }
  out(result.has_value());
  if (!result) {
    out(cereal::make_size_tag(static_cast<cereal::size_type>(error.size())));
    out.saveBinary(error.data(), static_cast<std::streamsize>(error.size()));
  } else if constexpr (!std::is_void_v<R>) {
    encode_result(out, *result);
  }
}

// A size tag followed by that many results is, byte for byte, how cereal
// encodes a std::vector of them: the host decodes a std::vector<R>.
template <class R, class... A>
void invoke_many_registered(ErasedFn erased, InputArchive& in, OutputArchive& out) {
  uint8_t mode = 0;
  cereal::size_type n = 0;
  in(mode, cereal::make_size_tag(n));
  if (mode != static_cast<uint8_t>(ManyMode::EachOutcome) && mode != static_cast<uint8_t>(ManyMode::StopAtFirstThrow))
    throw DecodeError("a CallMany frame of unknown mode");
  if (n == 0) expect_end_of_arguments(in);
  if (mode == static_cast<uint8_t>(ManyMode::EachOutcome)) {
    out(cereal::make_size_tag(n));
    ByteBuffer error;
    for (cereal::size_type i = 0; i < n; ++i) invoke_registered_outcome<R, A...>(erased, in, out, error, i + 1 == n);
    return;
  }
  if constexpr (!std::is_void_v<R>) out(cereal::make_size_tag(n));
  for (cereal::size_type i = 0; i < n; ++i) invoke_registered_call<R, A...>(erased, in, out, i + 1 == n);
}

template <class R, class... A>
uint32_t register_function(std::string name, R (*fn)(A...)) {
  static_assert(!std::is_reference_v<R>, "a registered function must return by value (the result crosses processes)");
  // Else the host would find out only when a result came, and blame the worker.
  static_assert(kHostLoadable<R>,
                "the host cannot rebuild this result type: give it a default constructor and a cereal "
                "serialize/load, or a cereal load_and_construct (a type with a save() only, or no cereal "
                "functions at all, e.g. a std::exception, can be thrown but not returned)");
  static_assert((std::is_default_constructible_v<std::decay_t<A>> && ...),
                "argument types must be default-constructible (cereal loads into them in the worker)");
  static_assert((kCrossesProcesses<std::decay_t<A>> && ...),
                "an argument type has no cereal serialization: give it a serialize() (or save/load) member or "
                "function, or include the cereal header of its type; text views and pointers cannot cross "
                "processes (take a std::string or a value instead of a std::string_view or a pointer)");
  static_assert(kCrossesProcesses<R>,
                "the result type has no cereal serialization: give it a serialize() (or save/load) member or "
                "function, or include the cereal header of its type");
  std::string signature = signature_of<R, A...>();
  uint64_t fp = fingerprint(signature);
  return FunctionRegistry::instance().add(FunctionEntry{std::move(name), std::move(signature), fp,
                                                        reinterpret_cast<ErasedFn>(fn), &invoke_registered<R, A...>,
                                                        &invoke_many_registered<R, A...>});
}

struct StaticRegistration {
  template <class R, class... A>
  StaticRegistration(const char* name, R (*fn)(A...)) {
    detail::register_function(name, fn);  // qualified: ADL would also find procpool::register_function
  }
};

}  // namespace procpool::detail

namespace procpool {
// Registers fn under `name` at run time; call before any ProcessPool starts.
template <class R, class... A>
void register_function(std::string name, R (*fn)(A...)) {
  detail::register_function(std::move(name), fn);
}
}  // namespace procpool

#define PROCPOOL_DETAIL_CONCAT2(a, b) a##b
#define PROCPOOL_DETAIL_CONCAT(a, b) PROCPOOL_DETAIL_CONCAT2(a, b)
// Registers a function under another name, at static initialisation.
#define PROCPOOL_REGISTER_AS(name, fn)                                                                                \
  [[maybe_unused]] static const ::procpool::detail::StaticRegistration PROCPOOL_DETAIL_CONCAT(procpool_registration_, \
                                                                                              __COUNTER__) {          \
    name, fn                                                                                                          \
  }
// Registers a function under its own name (as written, e.g. "ns::fn").
#define PROCPOOL_REGISTER(fn) PROCPOOL_REGISTER_AS(#fn, fn)
