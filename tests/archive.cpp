// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <cereal/types/map.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <procpool/common/archive.hpp>

using namespace procpool::detail;

TEST_CASE("Archive.RoundTripsContainers" * doctest::timeout(10)) {
  ByteBuffer buf;
  std::map<std::string, std::vector<int>> in{{"a", {1, 2, 3}}, {"bb", {}}}, out;
  OutputArchive out_ar(buf);
  out_ar(in);
  InputArchive ar(buf.data(), buf.size());
  ar(out);
  CHECK(out == in);
  CHECK(ar.remaining() == 0);
}

TEST_CASE("Archive.ForgedStringLengthIsRefusedWithoutAllocating" * doctest::timeout(10)) {
  ByteBuffer buf;
  uint64_t forged = uint64_t{1} << 40;  // a terabyte
  buf.append(&forged, sizeof forged);
  buf.append("abc", 3);
  InputArchive ar(buf.data(), buf.size());
  std::string s;
  CHECK_THROWS_WITH_AS(ar(s), doctest::Contains("exceeds the 3 bytes present"), DecodeError);
}

TEST_CASE("Archive.ForgedVectorCountIsRefused" * doctest::timeout(10)) {
  ByteBuffer buf;
  uint64_t forged = uint64_t{1} << 50;
  buf.append(&forged, sizeof forged);
  InputArchive ar(buf.data(), buf.size());
  std::vector<std::string> v;
  CHECK_THROWS_AS(ar(v), DecodeError);
}

TEST_CASE("Archive.TruncatedInputIsRefused" * doctest::timeout(10)) {
  ByteBuffer buf;
  buf.append("ab", 2);
  InputArchive ar(buf.data(), buf.size());
  int64_t v = 0;
  CHECK_THROWS_WITH_AS(ar(v), doctest::Contains("truncated"), DecodeError);
}

namespace {
struct Tag {
  template <class Archive>
  void serialize(Archive&) {}
};
}  // namespace

TEST_CASE("Archive.ContainersOfEmptyElementsRoundTrip" * doctest::timeout(10)) {
  ByteBuffer buf;
  std::vector<Tag> in(100), out;
  OutputArchive out_ar(buf);
  out_ar(in);
  InputArchive ar(buf.data(), buf.size());
  ar(out);
  CHECK(out.size() == 100);
}

namespace {
// Counts the elements it value-initialises (what a resize() before the copy does).
template <class T>
struct CountingAllocator {
  using value_type = T;
  static inline int zero_filled = 0;
  CountingAllocator() = default;
  template <class U>
  CountingAllocator(const CountingAllocator<U>&) {}
  T* allocate(size_t n) { return std::allocator<T>().allocate(n); }
  void deallocate(T* p, size_t n) { std::allocator<T>().deallocate(p, n); }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    if constexpr (sizeof...(Args) == 0) ++zero_filled;
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
  bool operator==(const CountingAllocator&) const { return true; }
};
}  // namespace

TEST_CASE("Archive.ByteVectorIsDecodedWithoutZeroFillingItFirst" * doctest::timeout(10)) {
  ByteBuffer buf;
  std::vector<char> in(1000);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<char>(i * 7);
  OutputArchive out_ar(buf);
  out_ar(in);
  InputArchive ar(buf.data(), buf.size());
  std::vector<char, CountingAllocator<char>> out;
  ar(out);
  CHECK(std::equal(out.begin(), out.end(), in.begin(), in.end()));
  CHECK(CountingAllocator<char>::zero_filled == 0);
  CHECK(ar.remaining() == 0);
}
