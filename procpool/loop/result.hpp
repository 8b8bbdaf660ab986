// SPDX-License-Identifier: MIT
#pragma once
// One outcome among many: what gather(return_exceptions, ...) and the map
// family give per awaitable or per element instead of stopping at the first
// exception.
#include <exception>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include <procpool/common/errors.hpp>

namespace procpool {

// A value or the exception that took its place.
template <class T>
class Result {
 public:
  using value_type = std::conditional_t<std::is_void_v<T>, std::monostate, T>;
  explicit Result(std::exception_ptr error, std::shared_ptr<const RemoteOrigin> origin = nullptr)
      : error_(std::move(error)), origin_(std::move(origin)) {}
  template <class... U>
  explicit Result(std::in_place_t, U&&... v) : value_(std::in_place, std::forward<U>(v)...) {}
  bool has_value() const noexcept { return !error_; }
  std::exception_ptr error() const noexcept { return error_; }
  // Future::remote_origin's, for this one call: where the exception the
  // task threw was raised (null for a value or the pool's own verdict).
  std::optional<RemoteOrigin> remote_origin() const {
    if (!origin_) return std::nullopt;
    return *origin_;
  }
  // The value, or rethrows the exception.
  value_type& value() {
    if (error_) std::rethrow_exception(error_);
    return *value_;
  }

 private:
  std::optional<value_type> value_;
  std::exception_ptr error_;
  std::shared_ptr<const RemoteOrigin> origin_;
};

// Tag: gather(return_exceptions, ...) and pool.map(return_exceptions, ...)
// give Results instead of propagating the first exception.
struct ReturnExceptions {};
inline constexpr ReturnExceptions return_exceptions{};

}  // namespace procpool
