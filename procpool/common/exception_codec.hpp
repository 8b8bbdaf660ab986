// SPDX-License-Identifier: MIT
#pragma once
// Exceptions across the process boundary.
//
// ExceptionRecord on the wire (cereal, in an Exception frame):
//   string type_name   demangled dynamic type of what was thrown
//   string what        what() (empty for a non-std::exception)
//   string backtrace   where the worker threw it
//   bool   has_fields  true when a codec below encoded the object's fields
//   ...    fields      the codec's own encoding
//
// The host rebuilds the same type when a codec is registered for type_name
// (the standard exception types and procpool's errors are built in; user
// types come from PROCPOOL_REGISTER_EXCEPTION), and RemoteError otherwise.
#include <exception>
#include <memory>
#include <string>
#include <type_traits>
#include <typeindex>
#include <unordered_map>

#include <procpool/common/archive.hpp>
#include <procpool/common/type_name.hpp>

namespace procpool::detail {

struct ExceptionCodec {
  std::string type_name;
  // Encodes the fields of `e` (whose dynamic type is exactly this type).
  void (*save)(OutputArchive& out, const std::exception& e);
  // Rebuilds the exception from its what() and fields.
  std::exception_ptr (*load)(InputArchive& in, const std::string& what);
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
    if constexpr (std::is_base_of_v<std::runtime_error, E>) static_cast<std::runtime_error&>(e) = std::runtime_error(what);
    else if constexpr (std::is_base_of_v<std::logic_error, E>) static_cast<std::logic_error&>(e) = std::logic_error(what);
    return e;
  }
}

template <class E>
void register_exception() {
  static_assert(std::is_base_of_v<std::exception, E>, "only types derived from std::exception can be registered");
  ExceptionCodec codec{type_name<E>(), nullptr, nullptr};
  codec.save = [](OutputArchive& out, const std::exception& e) {
    if constexpr (cereal::traits::is_output_serializable<E, OutputArchive>::value)
      out(dynamic_cast<const E&>(e));
  };
  codec.load = [](InputArchive& in, const std::string& what) -> std::exception_ptr {
    E e = make_with_what<E>(what);
    if constexpr (cereal::traits::is_input_serializable<E, InputArchive>::value) in(e);
    return std::make_exception_ptr(std::move(e));
  };
  ExceptionRegistry::instance().add(typeid(E), std::move(codec));
}

struct ExceptionRegistration {
  template <class E>
  explicit ExceptionRegistration(E*) {
    register_exception<E>();
  }
};

// Worker side, inside a catch block: encodes the exception being handled
// into at most max_bytes (cutting the message and backtrace, then dropping
// the fields, when it would be larger). Never throws; falls back to type
// name and message when fields fail to encode.
void encode_current_exception(ByteBuffer& out, const std::string& backtrace, size_t max_bytes) noexcept;

// Host side: rebuilds the exception from a record. Throws DecodeError when
// the record itself is malformed.
std::exception_ptr decode_exception(InputArchive& in);

}  // namespace procpool::detail

// Makes a user exception type cross the boundary as itself. The type derives
// from std::exception; if it has a cereal serialize/save/load, its fields
// travel too. The message travels through what() and a (const std::string&)
// constructor, or a standard base's message when there is no such constructor.
#define PROCPOOL_REGISTER_EXCEPTION(Type)                                                                \
  [[maybe_unused]] static const ::procpool::detail::ExceptionRegistration PROCPOOL_DETAIL_EXC_CONCAT( \
      procpool_exception_registration_, __COUNTER__) {                                               \
    static_cast<Type*>(nullptr)                                                                      \
  }
#define PROCPOOL_DETAIL_EXC_CONCAT2(a, b) a##b
#define PROCPOOL_DETAIL_EXC_CONCAT(a, b) PROCPOOL_DETAIL_EXC_CONCAT2(a, b)
