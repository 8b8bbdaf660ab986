// SPDX-License-Identifier: MIT
#include <procpool/common/exception_codec.hpp>

#include <cxxabi.h>

#include <cstdio>
#include <string_view>
#include <typeinfo>
#include <vector>

#include <cereal/types/string.hpp>

#include <procpool/common/errors.hpp>
#include <procpool/common/standard_exceptions.hpp>

namespace procpool::detail {
namespace {

// One level of the exception being encoded. `held` keeps the object alive
// while `object` points into it.
struct Level {
  std::exception_ptr held;
  const std::exception* object = nullptr;
  const ExceptionCodec* codec = nullptr;
  std::string type;
  std::string what;
  std::string base;  // the codec's type when it is a standard base's
  std::exception_ptr nested;
};

std::string current_type_name() {
  std::type_info* t = abi::__cxa_current_exception_type();
  return t ? demangle(t->name()) : std::string("unknown");
}

// std::throw_with_nested(E) throws a library type derived from E and
// std::nested_exception; the level is E's.
constexpr std::string_view kNestedPrefix = "std::_Nested_exception<";

void find_codec(Level& level, const std::exception& e) {
  ExceptionRegistry& registry = ExceptionRegistry::instance();
  level.codec = registry.find(typeid(e));
  if (!level.codec && level.type.starts_with(kNestedPrefix) && level.type.ends_with('>')) {
    level.type = level.type.substr(kNestedPrefix.size(), level.type.size() - kNestedPrefix.size() - 1);
    level.codec = registry.find(level.type);
  }
  if (!level.codec) {
    level.codec = registry.find(nearest_standard_base(e));
    if (level.codec) level.base = level.codec->type_name;
  }
}

// A thrown number's value as text (`throw 42;` arrives as an int "42");
// empty for any other type.
std::string number_thrown(const std::exception_ptr& p) {
  char text[32] = "";
  try {
    std::rethrow_exception(p);
  } catch (bool v) {
    return v ? "true" : "false";
  } catch (int v) {
    return std::to_string(v);
  } catch (long v) {
    return std::to_string(v);
  } catch (long long v) {
    return std::to_string(v);
  } catch (unsigned v) {
    return std::to_string(v);
  } catch (unsigned long v) {
    return std::to_string(v);
  } catch (unsigned long long v) {
    return std::to_string(v);
  } catch (double v) {
    std::snprintf(text, sizeof text, "%.17g", v);
  } catch (float v) {
    std::snprintf(text, sizeof text, "%.9g", static_cast<double>(v));
  } catch (...) {
  }
  return text;
}

Level describe(const std::exception_ptr& p) {
  Level level;
  level.held = p;
  try {
    std::rethrow_exception(p);
  } catch (const std::exception& e) {
    level.object = &e;
    level.type = demangle(typeid(e).name());
    level.what = e.what();
    find_codec(level, e);
    if (auto* n = dynamic_cast<const std::nested_exception*>(&e)) level.nested = n->nested_ptr();
  } catch (const std::string& s) {
    level.type = current_type_name();
    level.what = s;
  } catch (const char* s) {
    level.type = current_type_name();
    if (s) level.what = s;
  } catch (...) {
    level.type = current_type_name();
    level.what = number_thrown(p);
  }
  return level;
}

// `text`, or its first `limit` bytes and a note saying so.
std::string cut(const std::string& text, size_t limit) {
  if (text.size() <= limit) return text;
  return text.substr(0, limit) + " [procpool: cut at byte " + std::to_string(limit) + " of " +
         std::to_string(text.size()) + " to fit max_message_bytes]";
}

void encode_fields(OutputArchive& ar, const Level& level, bool with_fields) {
  ByteBuffer fields;
  bool has = false;
  if (with_fields && level.codec && level.object) {
    try {
      OutputArchive f(fields);
      level.codec->save(f, *level.object);
      has = true;
    } catch (...) {
      fields.clear();  // the fields failed: send type and message only
    }
  }
  ar(has, cereal::make_size_tag(static_cast<cereal::size_type>(fields.size())),
     cereal::binary_data(fields.data(), fields.size()));
}

// Appends the records of levels [0, count), each text cut to `limit`.
void encode_levels(ByteBuffer& out, const std::vector<Level>& levels, size_t count, const std::string& backtrace,
                   size_t limit, bool with_fields) {
  OutputArchive ar(out);
  for (size_t i = 0; i < count; ++i) {
    const Level& level = levels[i];
    ar(level.type, cut(level.what, limit), i == 0 ? cut(backtrace, limit) : std::string(), level.base);
    encode_fields(ar, level, with_fields);
    ar(i + 1 < count);
  }
}

}  // namespace

ExceptionRegistry& ExceptionRegistry::instance() {
  static ExceptionRegistry registry;
  return registry;
}

ExceptionRegistry::ExceptionRegistry() { add_builtin_codecs(*this); }

void ExceptionRegistry::add(const std::type_info& type, ExceptionCodec codec) {
  auto [it, inserted] = by_type_.insert_or_assign(std::type_index(type), std::move(codec));
  by_name_[it->second.type_name] = &it->second;
  (void)inserted;
}

const ExceptionCodec* ExceptionRegistry::find(const std::type_info& type) const {
  auto it = by_type_.find(std::type_index(type));
  return it == by_type_.end() ? nullptr : &it->second;
}

const ExceptionCodec* ExceptionRegistry::find(const std::string& type_name) const {
  auto it = by_name_.find(type_name);
  return it == by_name_.end() ? nullptr : it->second;
}

void encode_current_exception(ByteBuffer& out, const std::string& backtrace, size_t max_bytes) noexcept {
  size_t start = out.size();
  try {
    std::vector<Level> levels{describe(std::current_exception())};
    while (levels.back().nested && levels.size() < kMaxNesting) levels.push_back(describe(levels.back().nested));
    // Whole if it fits; else each text cut to a share of the limit, then
    // without fields, then the outermost level alone.
    size_t n = levels.size();
    size_t overhead = 512 + 256 * n;
    size_t share = max_bytes > overhead ? (max_bytes - overhead) / (2 * n) : 0;
    struct Try {
      size_t limit, count;
      bool fields;
    };
    for (Try t : {Try{~size_t{0}, n, true}, Try{share, n, true}, Try{share, n, false}, Try{share, 1, false}}) {
      out.resize(start);
      encode_levels(out, levels, t.count, backtrace, t.limit, t.fields);
      if (out.size() - start <= max_bytes) return;
    }
    out.resize(start);
    encode_levels(out, levels, 1, backtrace, 0, false);
  } catch (...) {
    // Even the fallback failed (out of memory): send the bare minimum.
    out.resize(start);
    try {
      OutputArchive ar(out);
      std::string none;
      ar(std::string("std::bad_alloc"), std::string("std::bad_alloc"), none, none, false, none, false);
    } catch (...) {
    }
  }
}

namespace {

struct Record {
  RemoteOrigin origin;
  std::string base;
  bool has_fields = false;
  std::string fields;
};

std::exception_ptr rebuild(const Record& r, bool nest) {
  // No fields: no codec knew the type, or its fields failed to encode;
  // only the name, message and backtrace are left.
  if (r.has_fields) {
    if (const ExceptionCodec* codec =
            ExceptionRegistry::instance().find(r.base.empty() ? r.origin.type_name() : r.base)) {
      try {
        InputArchive fields(reinterpret_cast<const std::byte*>(r.fields.data()), r.fields.size());
        return codec->load(fields, r.origin, nest);
      } catch (...) {
        // The fields did not load, or the type's constructor threw: what
        // is known still arrives, as RemoteError.
      }
    }
  }
  return as_raised(RemoteError(r.origin), nest);
}

}  // namespace

std::exception_ptr decode_exception(InputArchive& in, const std::string& function, pid_t pid,
                                    std::shared_ptr<const RemoteOrigin>* origin) {
  std::vector<Record> records;
  for (bool more = true; more;) {
    if (records.size() == kMaxNesting)
      throw DecodeError("an exception nested more than " + std::to_string(kMaxNesting) + " levels deep");
    std::string type, what, backtrace, base, fields;
    bool has_fields = false;
    in(type, what, backtrace, base, has_fields, fields, more);
    records.push_back(Record{RemoteOrigin(std::move(type), std::move(what), function, pid, std::move(backtrace)),
                             std::move(base), has_fields, std::move(fields)});
  }
  // Innermost first: each outer level is thrown while the one it nests is
  // the exception being handled.
  std::exception_ptr inner = rebuild(records.back(), false);
  for (size_t i = records.size() - 1; i-- > 0;) {
    try {
      std::rethrow_exception(inner);
    } catch (...) {
      inner = rebuild(records[i], true);
    }
  }
  if (origin) *origin = std::make_shared<const RemoteOrigin>(std::move(records.front().origin));
  return inner;
}

}  // namespace procpool::detail
