// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <cereal/types/map.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <procpool/common/archive.hpp>

#include <algorithm>
#include <span>

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

TEST_CASE("Archive.BoolOtherThanZeroOrOneIsRefused" * doctest::timeout(10)) {
  // Found by fuzz/fuzz_decode_exception: a forged byte copied into a bool
  // is undefined behaviour to read.
  for (unsigned char byte : {0, 1, 2, 110, 255}) {
    CAPTURE(int(byte));
    InputArchive ar(reinterpret_cast<const std::byte*>(&byte), 1);
    bool b = false;
    if (byte <= 1) {
      ar(b);
      CHECK(b == (byte == 1));
    } else {
      CHECK_THROWS_WITH_AS(ar(b), doctest::Contains("neither 0 nor 1"), DecodeError);
    }
  }
  ByteBuffer buf;
  OutputArchive out(buf);
  std::vector<bool> bools{true, false, true}, back;
  out(bools);
  InputArchive in(buf.data(), buf.size());
  in(back);
  CHECK(back == bools);
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

namespace {
// Hands a buffer over in pieces of 1, 2, ... 7 bytes, as a ring that is
// being refilled does, and counts the calls past the end (there must be none).
class PieceSource final : public ByteSource {
 public:
  explicit PieceSource(const ByteBuffer& buf) : buf_(buf) {}
  std::span<const std::byte> next(size_t most) override {
    size_t left = buf_.size() - at_;
    if (left == 0) ++overrun;
    size_t n = std::min({most, left, size_t{1} + pieces % 7});
    ++pieces;
    std::span<const std::byte> piece{buf_.data() + at_, n};
    at_ += n;
    return piece;
  }
  size_t pieces = 0;
  int overrun = 0;

 private:
  const ByteBuffer& buf_;
  size_t at_ = 0;
};
}  // namespace

TEST_CASE("Archive.AMessageArrivingInPiecesDecodesAsIfWhole" * doctest::timeout(10)) {
  ByteBuffer buf;
  std::map<std::string, std::vector<int>> map_in{{"a", {1, 2, 3}}, {"bb", {}}}, map_out;
  std::vector<unsigned char> bytes_in(5000), bytes_out;
  for (size_t i = 0; i < bytes_in.size(); ++i) bytes_in[i] = static_cast<unsigned char>(i * 13);
  double d_in = 2.5, d_out = 0;
  OutputArchive out_ar(buf);
  out_ar(map_in, bytes_in, d_in);
  PieceSource source(buf);
  InputArchive ar(source, buf.size());
  CHECK(ar.remaining() == buf.size());
  ar(map_out, bytes_out, d_out);
  CHECK(map_out == map_in);
  CHECK(bytes_out == bytes_in);
  CHECK(d_out == 2.5);
  CHECK(ar.remaining() == 0);
  CHECK(source.pieces > 1000);  // it did arrive in small pieces
  CHECK(source.overrun == 0);
}

TEST_CASE("Archive.AMessageInPiecesIsReadToItsEndAndNoFurther" * doctest::timeout(10)) {
  ByteBuffer buf;
  OutputArchive out_ar(buf);
  out_ar(std::string(100, 's'), int64_t{7});
  PieceSource source(buf);
  InputArchive ar(source, buf.size());
  std::string s;
  ar(s);
  ar.skip_rest();  // what the decoding did not take is read past
  CHECK(ar.remaining() == 0);
  int64_t more = 0;
  CHECK_THROWS_WITH_AS(ar(more), doctest::Contains("truncated"), DecodeError);
  CHECK(source.overrun == 0);
}
