// SPDX-License-Identifier: MIT
#pragma once
// How a call becomes a Call frame's payload, whichever pool sends it: the
// registry entry it names (by function pointer, checked at compile time; or
// by name, checked here against the registered signature), then
// `u32 function id, u64 signature fingerprint, cereal arguments` after
// room for the FrameHeader (frame.hpp). ProcessPool writes the frame into a
// worker's ring; procpool::mpi::MpiPool sends the same bytes to an agent.
#include <exception>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include <procpool/common/archive.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/common/frame.hpp>
#include <procpool/common/function_registry.hpp>

namespace procpool::detail {

// How an unregistered function is named in UnknownFunction: by its symbol
// if the dynamic linker knows it (a shared library's, or the program's
// with -rdynamic), else by its address and signature.
std::string describe_unregistered(ErasedFn fn, const std::string& signature);

template <class...>
inline constexpr bool kNever = false;

// What a call by name returns when it is not given its result type, which
// a name cannot tell: this one line is the first error, instead of a
// failed deduction of R.
template <class... Args>
struct NamedCallWithoutResultType {
  static_assert(kNever<Args...>,
                "a call by name needs the registered function's result type: pool.call<R>(\"name\", args...), "
                "loop.run_in_executor<R>(pool, \"name\", args...)");
};

// Whether F, as passed, is a pointer to a free function (or a function,
// which decays to one): the only callable a worker can find by name.
template <class F>
inline constexpr bool kFunctionPointer =
    std::is_pointer_v<std::decay_t<F>>&& std::is_function_v<std::remove_pointer_t<std::decay_t<F>>>;

// What a pool's entry points return when given anything else (a lambda, a
// functor, a std::function, a member function, a name without call<R>):
// the return type is instantiated at the call, so this one line is the
// first error, instead of a failed deduction.
template <class F>
struct RefusedCallable {
  static_assert(kFunctionPointer<F>,
                "procpool runs registered functions only: pass a free function (with PROCPOOL_REGISTER(fn) beside "
                "it), not a lambda, functor, std::function or member function, which a worker cannot find by name; "
                "to call by name, use call<R>(\"name\", args...)");
};

// The registry's entry for fn, or null with `failure` set to UnknownFunction
// (`signature` describes fn then).
const FunctionEntry* entry_of(ErasedFn fn, std::string (*signature)(), uint32_t& id, std::exception_ptr& failure);
template <class R, class... A>
const FunctionEntry* entry_of(R (*fn)(A...), uint32_t& id, std::exception_ptr& failure) {
  return entry_of(reinterpret_cast<ErasedFn>(fn), &signature_of<R, A...>, id, failure);
}

// The type an argument of a call by name travels as: its decayed type, but
// text (a literal, a char pointer, a string_view) as std::string, the only
// text type a function can be registered with (cereal has no char* nor
// string_view): pool.call<size_t>("length", "hello") calls length(std::string).
template <class Arg>
using named_t =
    std::conditional_t<std::is_same_v<std::decay_t<Arg>, const char*> || std::is_same_v<std::decay_t<Arg>, char*> ||
                           std::is_same_v<std::decay_t<Arg>, std::string_view>,
                       std::string, std::decay_t<Arg>>;

// The entry registered under `name`, if R and the Args (as named_t) are
// its signature; else null with `failure` set (UnknownFunction with the
// close matches, or SerializationError naming both signatures).
template <class R, class... Args>
const FunctionEntry* entry_named(std::string_view name, uint32_t& id, std::exception_ptr& failure) {
  auto& registry = FunctionRegistry::instance();
  const FunctionEntry* entry = registry.find(name, &id);
  if (!entry) {
    failure = std::make_exception_ptr(UnknownFunction(std::string(name), registry.close_matches(name)));
    return nullptr;
  }
  static const std::string signature = signature_of<R, named_t<Args>...>();
  static const uint64_t fingerprint = detail::fingerprint(signature);
  if (fingerprint != entry->fingerprint) {
    failure = std::make_exception_ptr(
        SerializationError(entry->name, "called as " + signature + " but registered as " + entry->signature));
    return nullptr;
  }
  return entry;
}

// Encodes one argument as the parameter type P: as is when the caller passed
// that type, converted otherwise.
template <class P, class Arg>
void encode_argument(OutputArchive& ar, Arg&& arg) {
  using Param = std::decay_t<P>;
  if constexpr (std::is_same_v<std::decay_t<Arg>, Param>) ar(arg);
  else ar(Param(std::forward<Arg>(arg)));
}

// The encoder of a typed call fn(args...): each argument converted to its
// parameter type. Refers to `args`: use it before they go.
template <class... A, class... Args>
auto typed_arguments(Args&&... args) {
  static_assert(sizeof...(A) == sizeof...(Args), "wrong number of arguments for this function");
  static_assert((std::is_constructible_v<std::decay_t<A>, Args&&> && ...),
                "an argument cannot be converted to the function's parameter type");
  // A tuple of references: each argument forwarded as the caller passed it.
  return [refs = std::forward_as_tuple(std::forward<Args>(args)...)](OutputArchive& ar) mutable {
    std::apply([&](auto&&... a) { (encode_argument<A>(ar, std::forward<decltype(a)>(a)), ...); }, std::move(refs));
  };
}

// The encoder of a call by name: the arguments as named_t (entry_named
// has checked those types). Refers to `args`: use it before they go.
template <class... Args>
auto named_arguments(Args&... args) {
  return [refs = std::tie(args...)](OutputArchive& ar) {
    std::apply([&](auto&... a) { (encode_argument<named_t<Args>>(ar, a), ...); }, refs);
  };
}

// Appends the call's payload to `frame` (which already holds the room for
// its header) through `sink`, the SharedBytes among the arguments going to
// `handles`. Returns the call's failure, or null: ResourceLimitExceeded as
// thrown or when the payload is over `max_message_bytes`;
// SerializationError when an argument does not encode.
template <class Encode>
std::exception_ptr encode_call(ByteBuffer& frame, ByteSink& sink, HandleList& handles, uint32_t function_id,
                               const FunctionEntry& entry, Encode&& encode, size_t max_message_bytes) {
  try {
    OutputArchive ar(sink, &handles);
    ar(function_id, entry.fingerprint);
    encode(ar);
  } catch (const ResourceLimitExceeded&) {
    return std::current_exception();
  } catch (const std::exception& e) {
    return std::make_exception_ptr(
        SerializationError(entry.name, std::string("the arguments could not be encoded: ") + e.what()));
  } catch (...) {  // a save() that throws something else: the call fails all the same
    return std::make_exception_ptr(SerializationError(
        entry.name, "the arguments could not be encoded: a save() threw an object that is no std::exception"));
  }
  size_t payload = frame.size() - sizeof(FrameHeader);
  if (payload > max_message_bytes)
    return std::make_exception_ptr(
        ResourceLimitExceeded("max_message_bytes", payload, max_message_bytes, "the call of '" + entry.name + "'"));
  return nullptr;
}

}  // namespace procpool::detail
