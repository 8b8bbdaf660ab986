// SPDX-License-Identifier: MIT
#pragma once
// PoolOptions::initializer: a registered function and its arguments, run
// once in each new worker before it takes calls (Python's `initializer`
// and `initargs`). The call is encoded once, when the Initializer is made,
// as a call frame's payload (function id, signature fingerprint, the
// arguments); each worker inherits the bytes with the host's memory at
// fork and decodes them as it would a call.
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include <procpool/common/archive.hpp>
#include <procpool/common/errors.hpp>
#include <procpool/common/function_registry.hpp>

namespace procpool {

class Initializer {
 public:
  Initializer() = default;  // none
  // fn(args...) in each new worker. fn must be registered (PROCPOOL_REGISTER);
  // its result is discarded. Arguments are converted to fn's parameter
  // types and encoded now; SharedBytes arguments are not supported (the
  // call crosses no channel). Throws UnknownFunction for an unregistered
  // fn and SerializationError for arguments that cannot be encoded.
  template <class R, class... A, class... Args>
  static Initializer of(R (*fn)(A...), Args&&... args);

  explicit operator bool() const noexcept { return call_ != nullptr; }
  const std::string& function() const noexcept { return function_; }  // its registered name
  // The encoded call (function id, fingerprint, arguments); null if none.
  const detail::ByteBuffer* encoded() const noexcept { return call_.get(); }

 private:
  std::shared_ptr<const detail::ByteBuffer> call_;
  std::string function_;
};

// The same as Initializer::of.
template <class R, class... A, class... Args>
Initializer initializer(R (*fn)(A...), Args&&... args) {
  return Initializer::of(fn, std::forward<Args>(args)...);
}

template <class R, class... A, class... Args>
Initializer Initializer::of(R (*fn)(A...), Args&&... args) {
  static_assert(sizeof...(A) == sizeof...(Args), "wrong number of arguments for the initializer");
  static_assert((std::is_constructible_v<std::decay_t<A>, Args&&> && ...),
                "an initializer argument cannot be converted to the function's parameter type");
  uint32_t id = 0;
  const detail::FunctionEntry* entry =
      detail::FunctionRegistry::instance().find(reinterpret_cast<detail::ErasedFn>(fn), &id);
  if (!entry) throw UnknownFunction::unregistered("the initializer's function");
  auto call = std::make_shared<detail::ByteBuffer>();
  try {
    detail::OutputArchive ar(*call);
    ar(id, entry->fingerprint);
    (ar(std::decay_t<A>(std::forward<Args>(args))), ...);
  } catch (const std::exception& e) {
    throw SerializationError(entry->name, std::string("the initializer's arguments could not be encoded: ") + e.what());
  }
  Initializer made;
  made.call_ = std::move(call);
  made.function_ = entry->name;
  return made;
}

}  // namespace procpool
