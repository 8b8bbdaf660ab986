// SPDX-License-Identifier: MIT
#include <procpool/common/function_registry.hpp>

#include <algorithm>

#include <procpool/common/errors.hpp>

namespace procpool::detail {
namespace {

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace

FunctionRegistry& FunctionRegistry::instance() {
  static FunctionRegistry registry;
  return registry;
}

uint32_t FunctionRegistry::add(FunctionEntry entry) {
  std::lock_guard lock(add_mutex_);
  if (live_pools_.load(std::memory_order_acquire) > 0)
    throw Error("cannot register '" + entry.name +
                "' while a ProcessPool is running: its workers were started without it; register before "
                "constructing the pool");
  if (entry.name.empty()) throw Error("cannot register a function under an empty name");
  if (auto it = by_name_.find(entry.name); it != by_name_.end())
    throw Error("a function is already registered as '" + entry.name + "' (" + entries_[it->second].signature +
                "); choose another name with PROCPOOL_REGISTER_AS");
  auto id = static_cast<uint32_t>(entries_.size());
  by_name_.emplace(entry.name, id);
  by_fn_.emplace(entry.fn, id);  // a function registered twice keeps its first name for typed calls
  entries_.push_back(std::move(entry));
  return id;
}

const FunctionEntry* FunctionRegistry::find(std::string_view name, uint32_t* id) const {
  auto it = by_name_.find(std::string(name));
  if (it == by_name_.end()) return nullptr;
  if (id) *id = it->second;
  return &entries_[it->second];
}

const FunctionEntry* FunctionRegistry::find(ErasedFn fn, uint32_t* id) const {
  auto it = by_fn_.find(fn);
  if (it == by_fn_.end()) return nullptr;
  if (id) *id = it->second;
  return &entries_[it->second];
}

uint64_t FunctionRegistry::digest() const noexcept {
  uint64_t h = fingerprint("procpool registry");
  for (const auto& e : entries_) h = (h ^ fingerprint(e.name)) * 0x100000001b3ULL ^ e.fingerprint;
  return h;
}

std::vector<std::string> FunctionRegistry::close_matches(std::string_view name) const {
  std::vector<std::pair<size_t, std::string>> scored;
  for (const auto& e : entries_) {
    size_t d = edit_distance(name, e.name);
    bool contains = !name.empty() && e.name.find(name) != std::string::npos;
    if (d <= std::max<size_t>(2, name.size() / 3) || contains) scored.emplace_back(d, e.name);
  }
  std::sort(scored.begin(), scored.end());
  std::vector<std::string> out;
  for (size_t i = 0; i < scored.size() && i < 3; ++i) out.push_back(scored[i].second);
  return out;
}

}  // namespace procpool::detail
