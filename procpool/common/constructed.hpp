// SPDX-License-Identifier: MIT
#pragma once
// Values the host builds from a worker's bytes: by default construction and
// the type's cereal load, or, for a type with no default constructor, by
// its cereal load_and_construct (the worker saves either kind the same way).
#include <cstddef>
#include <type_traits>
#include <utility>

#include <cereal/types/memory.hpp>

#include <procpool/common/archive.hpp>

namespace procpool::detail {

template <class T>
inline constexpr bool kBuiltByLoadAndConstruct =
    !std::is_default_constructible_v<T> && cereal::traits::has_load_and_construct<T, InputArchive>::value;

// Whether the host can rebuild a T a worker sent.
template <class T>
inline constexpr bool kHostLoadable = std::is_void_v<T> ||
                                      (std::is_default_constructible_v<T> &&
                                       cereal::traits::is_input_serializable<T, InputArchive>::value) ||
                                      (kBuiltByLoadAndConstruct<T> && std::is_move_constructible_v<T>);

// Whether cereal can write a T on one side and read it on the other: what
// every argument and result type needs (void crosses as nothing). Checked
// at registration, so that a type without serialization is named there in
// one line rather than in cereal's page of template errors.
template <class T>
inline constexpr bool kCrossesProcesses = [] {
  // An empty class needs no serialization: the archives elide it.
  if constexpr (std::is_void_v<T> || std::is_empty_v<T>) return true;
  else
    return cereal::traits::is_output_serializable<T, OutputArchive>::value &&
           (cereal::traits::is_input_serializable<T, InputArchive>::value || kBuiltByLoadAndConstruct<T>);
}();

// Runs T's load_and_construct through the wrapper cereal's own smart
// pointer loading uses (cereal 1.3), without the pointer: a smart pointer
// to a polymorphic type (every exception) would want cereal's polymorphic
// registry. Throws cereal::Exception when load_and_construct built nothing.
template <class T>
T load_constructed(InputArchive& in) {
  alignas(T) std::byte storage[sizeof(T)];
  cereal::memory_detail::LoadAndConstructLoadWrapper<InputArchive, T> wrapper(reinterpret_cast<T*>(storage));
  try {
    in(wrapper);
  } catch (...) {
    try {
      wrapper.construct.ptr()->~T();  // it built the object, then threw
    } catch (const cereal::Exception&) {
    }
    throw;
  }
  T* built = wrapper.construct.ptr();
  T value(std::move(*built));
  built->~T();
  return value;
}

}  // namespace procpool::detail
