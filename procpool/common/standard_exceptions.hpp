// SPDX-License-Identifier: MIT
#pragma once
// The codecs built into every process: the standard exception types and
// procpool's own errors, and the search for an unregistered type's nearest
// standard base.
#include <exception>
#include <typeinfo>

namespace procpool::detail {

class ExceptionRegistry;

void add_builtin_codecs(ExceptionRegistry& registry);

// The most derived standard exception type with a codec that `e` derives
// from (std::exception at worst).
const std::type_info& nearest_standard_base(const std::exception& e);

}  // namespace procpool::detail
