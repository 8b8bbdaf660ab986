// SPDX-License-Identifier: MIT
#include <procpool/common/exception_codec.hpp>

#include <cxxabi.h>

#include <any>
#include <functional>
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

namespace procpool::detail {
namespace {

// A message longer than this is cut: a runaway what() must not make the
// outcome larger than the response limit.
constexpr size_t kMaxWhat = 64 * 1024;

template <class E>
void add_plain() {
  register_exception<E>();
}

template <class E, class Save, class Load>
void add_custom(Save save, Load load) {
  ExceptionRegistry::instance().add(typeid(E), ExceptionCodec{type_name<E>(), save, load});
}

void add_procpool_errors() {
  add_custom<SerializationError>(
      [](OutputArchive& out, const std::exception& e) {
        auto& s = dynamic_cast<const SerializationError&>(e);
        out(s.function(), s.detail());
      },
      [](InputArchive& in, const std::string&) {
        std::string function, detail;
        in(function, detail);
        return std::make_exception_ptr(SerializationError(function, detail));
      });
  add_custom<ResourceLimitExceeded>(
      [](OutputArchive& out, const std::exception& e) {
        auto& r = dynamic_cast<const ResourceLimitExceeded&>(e);
        out(r.limit(), r.value(), r.maximum(), r.context());
      },
      [](InputArchive& in, const std::string&) {
        std::string limit, context;
        unsigned long long value = 0, maximum = 0;
        in(limit, value, maximum, context);
        return std::make_exception_ptr(ResourceLimitExceeded(limit, value, maximum, context));
      });
  add_custom<UnknownFunction>(
      [](OutputArchive& out, const std::exception& e) {
        auto& u = dynamic_cast<const UnknownFunction&>(e);
        out(u.name(), u.close_matches());
      },
      [](InputArchive& in, const std::string&) {
        std::string name;
        std::vector<std::string> close;
        in(name, close);
        return std::make_exception_ptr(UnknownFunction(name, close));
      });
  add_custom<std::system_error>(
      [](OutputArchive& out, const std::exception& e) {
        auto& s = dynamic_cast<const std::system_error&>(e);
        out(s.code().value(), std::string(s.code().category().name()));
      },
      [](InputArchive& in, const std::string& what) {
        int value = 0;
        std::string category;
        in(value, category);
        const std::error_category& cat = category == "system" ? std::system_category() : std::generic_category();
        // what() already holds the code's message; carry it unchanged.
        return std::make_exception_ptr(std::system_error(std::error_code(value, cat), what));
      });
}

std::string current_type_name() {
  std::type_info* t = abi::__cxa_current_exception_type();
  return t ? demangle(t->name()) : std::string("unknown");
}

// Appends one record; false (and nothing appended) if it exceeds max_bytes.
bool try_encode_record(ByteBuffer& out, const std::string& type, const std::string& what,
                       const std::string& backtrace, const ExceptionCodec* codec, const std::exception* e,
                       size_t max_bytes) {
  size_t start = out.size();
  OutputArchive ar(out);
  ar(type, what, backtrace);
  bool fields = false;
  if (codec && e) {
    size_t mark = out.size();
    try {
      ar(true);
      codec->save(ar, *e);
      fields = true;
    } catch (...) {
      out.resize(mark);  // the fields failed: send type and message only
    }
  }
  if (!fields) ar(false);
  if (out.size() - start <= max_bytes) return true;
  out.resize(start);
  return false;
}

void encode_record(ByteBuffer& out, const std::string& type, std::string what, std::string backtrace,
                   const ExceptionCodec* codec, const std::exception* e, size_t max_bytes) {
  if (what.size() > kMaxWhat) what.resize(kMaxWhat);
  if (try_encode_record(out, type, what, backtrace, codec, e, max_bytes)) return;
  // Too large for the response limit: cut the message and backtrace, then
  // drop the fields too if that is still not enough.
  size_t room = max_bytes > type.size() + 64 ? (max_bytes - type.size() - 64) / 2 : 0;
  what.resize(std::min(what.size(), room));
  backtrace.resize(std::min(backtrace.size(), room));
  if (try_encode_record(out, type, what, backtrace, codec, e, max_bytes)) return;
  try_encode_record(out, type, what, backtrace, nullptr, nullptr, ~size_t{0});
}

}  // namespace

ExceptionRegistry& ExceptionRegistry::instance() {
  static ExceptionRegistry registry;
  return registry;
}

ExceptionRegistry::ExceptionRegistry() {}

void ExceptionRegistry::add(const std::type_info& type, ExceptionCodec codec) {
  auto [it, inserted] = by_type_.insert_or_assign(std::type_index(type), std::move(codec));
  by_name_[it->second.type_name] = &it->second;
  (void)inserted;
}

namespace {
// The built-in codecs, installed once before the first lookup.
void install_builtins() {
  static const bool done = [] {
    add_plain<std::exception>();
    add_plain<std::logic_error>();
    add_plain<std::invalid_argument>();
    add_plain<std::domain_error>();
    add_plain<std::length_error>();
    add_plain<std::out_of_range>();
    add_plain<std::runtime_error>();
    add_plain<std::range_error>();
    add_plain<std::overflow_error>();
    add_plain<std::underflow_error>();
    add_plain<std::bad_alloc>();
    add_plain<std::bad_array_new_length>();
    add_plain<std::bad_cast>();
    add_plain<std::bad_typeid>();
    add_plain<std::bad_exception>();
    add_plain<std::bad_function_call>();
    add_plain<std::bad_optional_access>();
    add_plain<std::bad_variant_access>();
    add_plain<std::bad_any_cast>();
    add_plain<std::bad_weak_ptr>();
    add_procpool_errors();
    return true;
  }();
  (void)done;
}
}  // namespace

const ExceptionCodec* ExceptionRegistry::find(const std::type_info& type) const {
  install_builtins();
  auto it = by_type_.find(std::type_index(type));
  return it == by_type_.end() ? nullptr : &it->second;
}

const ExceptionCodec* ExceptionRegistry::find(const std::string& type_name) const {
  install_builtins();
  auto it = by_name_.find(type_name);
  return it == by_name_.end() ? nullptr : it->second;
}

void encode_current_exception(ByteBuffer& out, const std::string& backtrace, size_t max_bytes) noexcept {
  size_t start = out.size();
  try {
    try {
      throw;
    } catch (const std::exception& e) {
      const ExceptionCodec* codec = ExceptionRegistry::instance().find(typeid(e));
      encode_record(out, demangle(typeid(e).name()), e.what(), backtrace, codec, &e, max_bytes);
    } catch (...) {
      encode_record(out, current_type_name(), "", backtrace, nullptr, nullptr, max_bytes);
    }
  } catch (...) {
    // Even the fallback failed (out of memory): send the bare minimum.
    out.resize(start);
    try {
      OutputArchive ar(out);
      ar(std::string("std::bad_alloc"), std::string("std::bad_alloc"), std::string(), false);
    } catch (...) {
    }
  }
}

std::exception_ptr decode_exception(InputArchive& in) {
  std::string type, what, backtrace;
  bool has_fields = false;
  in(type, what, backtrace, has_fields);
  // has_fields is false when no codec knew the type, or its fields failed
  // to encode: either way only the name, message and backtrace are left.
  if (has_fields) {
    if (const ExceptionCodec* codec = ExceptionRegistry::instance().find(type)) {
      try {
        return codec->load(in, what);
      } catch (...) {
        // The fields did not load, or the type's constructor threw: the
        // type name, message and backtrace still arrive, as RemoteError.
      }
    }
  }
  return std::make_exception_ptr(RemoteError(type, what, backtrace));
}

}  // namespace procpool::detail
