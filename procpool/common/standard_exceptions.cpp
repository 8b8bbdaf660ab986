// SPDX-License-Identifier: MIT
#include <procpool/common/standard_exceptions.hpp>

#include <any>
#include <functional>
#include <future>
#include <ios>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <typeinfo>
#include <variant>

#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <procpool/common/errors.hpp>
#include <procpool/common/exception_codec.hpp>

namespace procpool::detail {
namespace {

// Every standard type a codec knows, each before its bases: the first one
// an exception derives from is its nearest standard base.
template <class... E>
struct TypeList {};
using StandardTypes =
    TypeList<std::ios_base::failure, std::system_error, std::future_error, std::bad_array_new_length, std::bad_alloc,
             std::bad_any_cast, std::bad_cast, std::bad_typeid, std::bad_exception, std::bad_function_call,
             std::bad_optional_access, std::bad_variant_access, std::bad_weak_ptr, std::invalid_argument,
             std::domain_error, std::length_error, std::out_of_range, std::logic_error, std::range_error,
             std::overflow_error, std::underflow_error, std::runtime_error, std::exception>;

// Stands in for a standard type E whose exact rebuild would differ from what
// was thrown: the type thrown was one derived from E and not registered, or
// E's what() is fixed by the library (bad_variant_access, bad_alloc, ...)
// and the worker's differs. Caught as E and as RemoteOrigin; what() is the
// worker's, byte for byte. Not final: std::throw_with_nested derives from it.
template <class E>
class RemoteStandard : public E, public RemoteOrigin {
 public:
  RemoteStandard(E e, RemoteOrigin origin) : E(std::move(e)), RemoteOrigin(std::move(origin)) {}
  const char* what() const noexcept override { return message().c_str(); }
};

// The categories whose objects exist in every process; a code of any other
// category arrives in the generic one (its what() is kept all the same).
const std::error_category& category_named(const std::string& name) {
  for (const std::error_category* c :
       {&std::generic_category(), &std::system_category(), &std::iostream_category(), &std::future_category()})
    if (name == c->name()) return *c;
  return std::generic_category();
}

template <class E>
inline constexpr bool kHasCode = std::is_base_of_v<std::system_error, E> || std::is_same_v<E, std::future_error>;

template <class E>
std::error_code code_of(const E& e) {
  if constexpr (kHasCode<E>) return e.code();
  else return {};
}

// Builds E so that its what() is `what` where the library allows: a
// system_error's what() is "<argument>: <code's message>", so the argument
// is what precedes the message.
template <class E>
E build(const std::string& what, std::error_code code) {
  if constexpr (kHasCode<E> && !std::is_same_v<E, std::future_error>) {
    std::string tail = code.message();
    std::string argument = what;
    if (what.size() >= tail.size() + 2 && what.ends_with(": " + tail)) argument.resize(what.size() - tail.size() - 2);
    if constexpr (std::is_same_v<E, std::system_error>) return what == tail ? E(code) : E(code, argument);
    else return E(argument, code);
  } else if constexpr (kHasCode<E>) {
    // Only a future_errc constructor is public; a code of another category
    // becomes future_errc 0 (invalid) and the worker's what() is kept.
    int value = code.category() == std::future_category() ? code.value() : 0;
    return E(static_cast<std::future_errc>(value));
  } else if constexpr (std::is_constructible_v<E, const std::string&>) {
    return E(what);
  } else {
    return E();
  }
}

template <class E>
std::exception_ptr load_standard(InputArchive& in, const RemoteOrigin& origin, bool nest) {
  std::error_code code;
  if constexpr (kHasCode<E>) {
    int value = 0;
    std::string category;
    in(value, category);
    code = std::error_code(value, category_named(category));
  }
  E e = build<E>(origin.message(), code);
  if (origin.type_name() == type_name<E>() && origin.message() == e.what()) return as_raised(std::move(e), nest);
  return as_raised(RemoteStandard<E>(std::move(e), origin), nest);
}

template <class E>
void add_standard(ExceptionRegistry& registry) {
  auto save = [](OutputArchive& out, const std::exception& e) {
    if constexpr (kHasCode<E>) {
      std::error_code code = code_of(dynamic_cast<const E&>(e));
      out(code.value(), std::string(code.category().name()));
    }
  };
  registry.add(typeid(E), ExceptionCodec{type_name<E>(), save, &load_standard<E>});
}

template <class... E>
void add_standard_types(ExceptionRegistry& registry, TypeList<E...>) {
  (add_standard<E>(registry), ...);
}

template <class E>
bool derives_from(const std::exception& e) {
  if constexpr (std::is_same_v<E, std::exception>) return true;
  else return dynamic_cast<const E*>(&e) != nullptr;
}

template <class... E>
const std::type_info& first_base(const std::exception& e, TypeList<E...>) {
  const std::type_info* found = nullptr;
  ((found = found || !derives_from<E>(e) ? found : &typeid(E)), ...);
  return *found;  // std::exception, the last, always matches
}

// procpool's errors: rebuilt from their fields (their what() follows from them).
template <class E, class Save, class Load>
void add_error(ExceptionRegistry& registry, Save save, Load load) {
  registry.add(typeid(E), ExceptionCodec{type_name<E>(), save, load});
}

void add_procpool_errors(ExceptionRegistry& registry) {
  add_error<SerializationError>(
      registry,
      [](OutputArchive& out, const std::exception& e) {
        auto& s = dynamic_cast<const SerializationError&>(e);
        out(s.function(), s.detail());
      },
      [](InputArchive& in, const RemoteOrigin&, bool nest) {
        std::string function, detail;
        in(function, detail);
        return as_raised(SerializationError(function, detail), nest);
      });
  add_error<ResourceLimitExceeded>(
      registry,
      [](OutputArchive& out, const std::exception& e) {
        auto& r = dynamic_cast<const ResourceLimitExceeded&>(e);
        out(r.limit(), r.value(), r.maximum(), r.context());
      },
      [](InputArchive& in, const RemoteOrigin&, bool nest) {
        std::string limit, context;
        unsigned long long value = 0, maximum = 0;
        in(limit, value, maximum, context);
        return as_raised(ResourceLimitExceeded(limit, value, maximum, context), nest);
      });
  add_error<UnknownFunction>(
      registry,
      [](OutputArchive& out, const std::exception& e) {
        auto& u = dynamic_cast<const UnknownFunction&>(e);
        out(u.name(), u.close_matches());
      },
      [](InputArchive& in, const RemoteOrigin&, bool nest) {
        std::string name;
        std::vector<std::string> close;
        in(name, close);
        return as_raised(UnknownFunction(name, close), nest);
      });
}

}  // namespace

void add_builtin_codecs(ExceptionRegistry& registry) {
  add_standard_types(registry, StandardTypes{});
  add_procpool_errors(registry);
}

const std::type_info& nearest_standard_base(const std::exception& e) { return first_base(e, StandardTypes{}); }

}  // namespace procpool::detail
