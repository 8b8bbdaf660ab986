// SPDX-License-Identifier: MIT
#pragma once
// Exceptions across the process boundary.
//
// An Exception frame holds one record per level of a nested exception
// (std::throw_with_nested), the outermost first, at most kMaxNesting:
//   string type_name   demangled type as thrown (for a level made by
//                      throw_with_nested, the type it was given)
//   string what        what(); the text of a thrown std::string or C string
//   string backtrace   where the worker threw it (the first record only)
//   string base        for an unregistered type, its nearest standard base
//                      that has a codec, else empty
//   bool   has_fields  true when the codec of type_name (or base) encoded
//   string fields      its encoding, whole: a level whose fields fail to
//                      load leaves the next level's bytes where they are
//   bool   nested      another record follows: the exception this one nests
//
// The host rebuilds each level as its exact type when a codec is registered
// for type_name (the standard exception types and procpool's errors are
// built in; user types come from PROCPOOL_REGISTER_EXCEPTION); as a
// stand-in derived from `base` and RemoteOrigin when there is a base; and
// as RemoteError otherwise. It rebuilds the innermost level first and
// throws each outer one with std::throw_with_nested while the level inside
// is the current exception, so std::rethrow_if_nested walks the same chain.
#include <sys/types.h>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <typeindex>
#include <unordered_map>

#include <procpool/common/archive.hpp>
#include <procpool/common/constructed.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/common/type_name.hpp>

namespace procpool::detail {

// Levels of a nested exception that cross; the worker drops deeper ones.
inline constexpr size_t kMaxNesting = 16;

// Throws `e` as std::throw_with_nested would when `nest` (the current
// exception then becomes the nested one), else only wraps it.
template <class E>
std::exception_ptr as_raised(E&& e, bool nest) {
  if (nest) {
    try {
      std::throw_with_nested(std::forward<E>(e));
    } catch (...) {
      return std::current_exception();
    }
  }
  return std::make_exception_ptr(std::forward<E>(e));
}

struct ExceptionCodec {
  std::string type_name;
  // Encodes the fields of `e` (whose dynamic type is this type or derives from it).
  void (*save)(OutputArchive& out, const std::exception& e);
  // Rebuilds the exception from its fields and what the record says of it
  // (type, what(), ...), as as_raised() gives it.
  std::exception_ptr (*load)(InputArchive& fields, const RemoteOrigin& origin, bool nest);
};

class ExceptionRegistry {
 public:
  static ExceptionRegistry& instance();
  void add(const std::type_info& type, ExceptionCodec codec);
  const ExceptionCodec* find(const std::type_info& type) const;
  const ExceptionCodec* find(const std::string& type_name) const;

 private:
  ExceptionRegistry();
  std::unordered_map<std::type_index, ExceptionCodec> by_type_;
  std::unordered_map<std::string, const ExceptionCodec*> by_name_;
};

// Builds E carrying `what`: through E(what) when E has that constructor;
// otherwise default-constructed, with the message assigned to its standard
// base where there is one.
template <class E>
E make_with_what(const std::string& what) {
  if constexpr (std::is_constructible_v<E, const std::string&>) {
    return E(what);
  } else {
    E e{};
    if constexpr (std::is_base_of_v<std::runtime_error, E>)
      static_cast<std::runtime_error&>(e) = std::runtime_error(what);
    else if constexpr (std::is_base_of_v<std::logic_error, E>)
      static_cast<std::logic_error&>(e) = std::logic_error(what);
    return e;
  }
}

// Gives a rebuilt exception the worker's what(), byte for byte, where it
// comes from a standard base's message: a constructor that decorates its
// argument ("E: " + what) would otherwise decorate it twice. A type whose
// what() it computes itself keeps that (from its fields, which must then
// be serialized).
template <class E>
void restore_what(E& e, const std::string& what) {
  if (what == e.what()) return;
  if constexpr (std::is_base_of_v<std::runtime_error, E>)
    static_cast<std::runtime_error&>(e) = std::runtime_error(what);
  else if constexpr (std::is_base_of_v<std::logic_error, E>) static_cast<std::logic_error&>(e) = std::logic_error(what);
}

template <class E>
void register_exception() {
  static_assert(std::is_base_of_v<std::exception, E>, "only types derived from std::exception can be registered");
  static_assert(std::is_default_constructible_v<E> || std::is_constructible_v<E, const std::string&> ||
                    kBuiltByLoadAndConstruct<E>,
                "a registered exception type needs a default constructor, a (const std::string&) constructor, or a "
                "cereal load_and_construct (member or cereal::LoadAndConstruct specialization)");
  static_assert(!kBuiltByLoadAndConstruct<E> || cereal::traits::is_output_serializable<E, OutputArchive>::value,
                "a type built by load_and_construct needs a cereal save or serialize for its fields");
  ExceptionCodec codec{type_name<E>(), nullptr, nullptr};
  codec.save = [](OutputArchive& out, const std::exception& e) {
    if constexpr (cereal::traits::is_output_serializable<E, OutputArchive>::value) out(dynamic_cast<const E&>(e));
  };
  codec.load = [](InputArchive& in, const RemoteOrigin& origin, bool nest) -> std::exception_ptr {
    if constexpr (kBuiltByLoadAndConstruct<E>) {
      E e = load_constructed<E>(in);
      restore_what(e, origin.message());
      return as_raised(std::move(e), nest);
    } else {
      E e = make_with_what<E>(origin.message());
      if constexpr (cereal::traits::is_input_serializable<E, InputArchive>::value) in(e);
      restore_what(e, origin.message());
      return as_raised(std::move(e), nest);
    }
  };
  ExceptionRegistry::instance().add(typeid(E), std::move(codec));
}

struct ExceptionRegistration {
  template <class E>
  explicit ExceptionRegistration(E*) {
    register_exception<E>();
  }
};

// Worker side, inside a catch block: encodes the exception being handled,
// and those it nests, into at most max_bytes (cutting the messages and
// backtrace, saying so in them, then dropping fields and nested levels, when
// it would be larger). Never throws.
void encode_current_exception(ByteBuffer& out, const std::string& backtrace, size_t max_bytes) noexcept;

// Host side: rebuilds the exception (chain) from its records; `function`
// and `pid` say where it was thrown. Throws DecodeError when a record
// itself is malformed. `origin`, if given, receives the outermost record's
// RemoteOrigin: an exception rebuilt as its exact type has no room for it,
// so the future that fails with it keeps it (Future::remote_origin).
std::exception_ptr decode_exception(InputArchive& in, const std::string& function, pid_t pid,
                                    std::shared_ptr<const RemoteOrigin>* origin = nullptr);

}  // namespace procpool::detail

// Makes a user exception type cross the boundary as itself. The type derives
// from std::exception; if it has a cereal serialize/save/load, its fields
// travel too. The message travels through what() and a (const std::string&)
// constructor, or a standard base's message when there is no such
// constructor. A type with neither a default nor a string constructor (const
// fields) is built by its cereal load_and_construct from its saved fields.
// Type is a template argument, where parentheses are not allowed.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define PROCPOOL_REGISTER_EXCEPTION(Type)                                                             \
  [[maybe_unused]] static const ::procpool::detail::ExceptionRegistration PROCPOOL_DETAIL_EXC_CONCAT( \
      procpool_exception_registration_, __COUNTER__) {                                                \
    static_cast<Type*>(nullptr)                                                                       \
  }
// NOLINTEND(bugprone-macro-parentheses)
#define PROCPOOL_DETAIL_EXC_CONCAT2(a, b) a##b
#define PROCPOOL_DETAIL_EXC_CONCAT(a, b) PROCPOOL_DETAIL_EXC_CONCAT2(a, b)
