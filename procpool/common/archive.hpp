// SPDX-License-Identifier: MIT
#pragma once
// cereal archives that write into a growable byte buffer (or a ring) and
// read from a bounded span or a message arriving in pieces, without iostreams.
//
// InputArchive reads bytes that may come from an untrusted worker, so every
// read is bounds-checked and every size prefix is capped by the bytes the
// message still holds: a forged length can neither read out of bounds nor make the host
// allocate gigabytes (cereal issue #103). It registers no polymorphic types,
// so nothing polymorphic can be loaded through it (cereal issue #870).
#include <cereal/cereal.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace procpool::detail {

// Where an OutputArchive writes.
class ByteSink {
 public:
  virtual void write(const void* data, size_t size) = 0;

 protected:
  ~ByteSink() = default;
};

// A growable byte buffer that never zero-fills (unlike std::string::resize).
// The first kInline bytes live in the object itself: a small call's frame
// (a no-op's is 36 bytes) then costs no allocation of its own, and every
// pending call holds one.
class ByteBuffer final : public ByteSink {
 public:
  static constexpr size_t kInline = 56;

  ByteBuffer() noexcept = default;
  ByteBuffer(const ByteBuffer&) = delete;
  ByteBuffer& operator=(const ByteBuffer&) = delete;
  ByteBuffer(ByteBuffer&& o) noexcept { take(o); }
  ByteBuffer& operator=(ByteBuffer&& o) noexcept {
    if (this != &o) {
      release();
      take(o);
    }
    return *this;
  }
  ~ByteBuffer() { release(); }

  std::byte* data() noexcept { return data_; }
  const std::byte* data() const noexcept { return data_; }
  size_t size() const noexcept { return size_; }
  size_t capacity() const noexcept { return cap_; }
  void clear() noexcept { size_ = 0; }
  void reserve(size_t n) {
    if (n <= cap_) return;
    size_t cap = cap_ * 2;
    while (cap < n) cap *= 2;
    std::byte* p;
    if (data_ == inline_) {
      p = static_cast<std::byte*>(std::malloc(cap));
      if (p && size_) std::memcpy(p, inline_, size_);
    } else {
      p = static_cast<std::byte*>(std::realloc(data_, cap));
    }
    if (!p) throw std::bad_alloc();
    data_ = p;
    cap_ = cap;
  }
  // Grows by n uninitialised bytes and returns where they start.
  std::byte* grow(size_t n) {
    reserve(size_ + n);
    std::byte* at = data_ + size_;
    size_ += n;
    return at;
  }
  void append(const void* p, size_t n) {
    if (n) std::memcpy(grow(n), p, n);
  }
  void write(const void* p, size_t n) override { append(p, n); }
  void resize(size_t n) {
    reserve(n);
    size_ = n;
  }

 private:
  void release() noexcept {
    if (data_ != inline_) std::free(data_);
    data_ = inline_;
    size_ = 0;
    cap_ = kInline;
  }
  // Leaves `o` empty.
  void take(ByteBuffer& o) noexcept {
    if (o.data_ == o.inline_) {
      std::memcpy(inline_, o.inline_, o.size_);
      data_ = inline_;
    } else {
      data_ = o.data_;
      o.data_ = o.inline_;
    }
    size_ = o.size_;
    cap_ = o.cap_;
    o.size_ = 0;
    o.cap_ = kInline;
  }

  std::byte* data_ = inline_;
  size_t size_ = 0;
  size_t cap_ = kInline;
  std::byte inline_[kInline];
};

// Thrown by InputArchive when the bytes run out or a size prefix is forged;
// the pool turns it into a SerializationError or ProtocolError with context.
class DecodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Thrown when a task's result cannot be encoded (its save threw); the worker
// reports it as SerializationError naming the function.
class EncodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Descriptors of the SharedBytes (shared_bytes.hpp) a frame carries: they
// travel beside it, and the frame holds indices into this list.
class SealedMemory;
using HandleList = std::vector<std::shared_ptr<const SealedMemory>>;
// At most this many per frame: one SCM_RIGHTS message carries them all
// (the kernel's limit is 253), and each is a descriptor in the receiver.
inline constexpr size_t kMaxHandlesPerFrame = 64;

class OutputArchive : public cereal::OutputArchive<OutputArchive, cereal::AllowEmptyClassElision> {
 public:
  // `handles` collects the SharedBytes written; null where none may travel.
  explicit OutputArchive(ByteSink& out, HandleList* handles = nullptr)
      : cereal::OutputArchive<OutputArchive, cereal::AllowEmptyClassElision>(this), out_(out), handles_(handles) {}
  void saveBinary(const void* data, std::streamsize size) { out_.write(data, static_cast<size_t>(size)); }
  HandleList* handles() const noexcept { return handles_; }

 private:
  ByteSink& out_;
  HandleList* handles_;
};

// Where an InputArchive gets the rest of a message that arrives in pieces
// (a call larger than the free space of its ring streams through it).
class ByteSource {
 public:
  // The next piece: at least one byte and at most `most`, valid until the
  // next call. Called only while bytes of the message are still to come.
  virtual std::span<const std::byte> next(size_t most) = 0;

 protected:
  ~ByteSource() = default;
};

class InputArchive : public cereal::InputArchive<InputArchive, cereal::AllowEmptyClassElision> {
 public:
  // A message of `size` bytes at `data`. `handles`: the descriptors that
  // came with the frame (null: none did).
  InputArchive(const std::byte* data, size_t size, const HandleList* handles = nullptr)
      : InputArchive(std::span<const std::byte>(data, size), {}, handles) {}
  // A message in two pieces (one that wraps around the end of a ring).
  InputArchive(std::span<const std::byte> first, std::span<const std::byte> second, const HandleList* handles = nullptr)
      : cereal::InputArchive<InputArchive, cereal::AllowEmptyClassElision>(this), pos_(first.data()),
        end_(first.data() + first.size()), to_come_(second.size()), second_(second), handles_(handles) {}
  // A message of `size` bytes that `source` hands over piece by piece.
  InputArchive(ByteSource& source, size_t size, const HandleList* handles = nullptr)
      : cereal::InputArchive<InputArchive, cereal::AllowEmptyClassElision>(this), to_come_(size), source_(&source),
        handles_(handles) {}
  const HandleList* handles() const noexcept { return handles_; }
  void loadBinary(void* const data, std::streamsize size) {
    auto n = static_cast<size_t>(size);
    if (n <= static_cast<size_t>(end_ - pos_)) {  // at hand: the common case, a call's every field
      if (n > 0) std::memcpy(data, pos_, n);      // data may be null when n is 0 (an empty container's)
      pos_ += n;
      return;
    }
    auto* out = static_cast<std::byte*>(data);
    read_pieces(n, [&out](const std::byte* piece, size_t k) {
      std::memcpy(out, piece, k);
      out += k;
    });
  }
  // Bytes of the message not yet read, at hand or still to come.
  size_t remaining() const noexcept { return static_cast<size_t>(end_ - pos_) + to_come_; }
  // Passes the next n bytes to f(const std::byte*, size_t) in as many
  // contiguous pieces as they lie in; throws DecodeError if fewer are left.
  template <class F>
  void read_pieces(size_t n, F&& f) {
    if (n > remaining())
      throw DecodeError("truncated data: needed " + std::to_string(n) + " bytes, " + std::to_string(remaining()) +
                        " left");
    while (n > 0) {
      if (pos_ == end_) next_piece();
      size_t k = std::min(n, static_cast<size_t>(end_ - pos_));
      f(pos_, k);
      pos_ += k;
      n -= k;
    }
  }
  // Reads past whatever the decoding left, so that a source is drained.
  void skip_rest() {
    read_pieces(remaining(), [](const std::byte*, size_t) {});
  }

 private:
  void next_piece() {
    std::span<const std::byte> piece = source_ ? source_->next(to_come_) : second_;
    pos_ = piece.data();
    end_ = pos_ + piece.size();
    to_come_ -= piece.size();
  }

  const std::byte* pos_ = nullptr;
  const std::byte* end_ = nullptr;
  size_t to_come_ = 0;                 // bytes the source has yet to hand over
  ByteSource* source_ = nullptr;       // hands over what is to come, or...
  std::span<const std::byte> second_;  // ...it is here
  const HandleList* handles_;
};

template <class T>
inline std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_SAVE_FUNCTION_NAME(OutputArchive& ar, const T& t) {
  ar.saveBinary(std::addressof(t), sizeof(t));
}
template <class T>
inline std::enable_if_t<std::is_arithmetic_v<T> && !std::is_same_v<T, bool>> CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar,
                                                                                                       T& t) {
  ar.loadBinary(std::addressof(t), sizeof(t));
}
// A bool is one byte on the wire, 0 or 1. Any other byte is a forgery,
// refused: copied into a bool it would make every later read of that bool
// undefined behaviour (found by fuzz/fuzz_decode_exception: an exception
// record's `nested` flag of 110).
inline void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, bool& b) {
  static_assert(sizeof(bool) == 1, "a bool travels as one byte");
  unsigned char byte = 0;
  ar.loadBinary(&byte, 1);
  if (byte > 1) throw DecodeError("a bool encoded as " + std::to_string(byte) + ", neither 0 nor 1");
  b = byte == 1;
}
template <class Archive, class T>
inline CEREAL_ARCHIVE_RESTRICT(InputArchive, OutputArchive)
    CEREAL_SERIALIZE_FUNCTION_NAME(Archive& ar, cereal::NameValuePair<T>& t) {
  ar(t.value);
}
template <class T>
inline void CEREAL_SAVE_FUNCTION_NAME(OutputArchive& ar, const cereal::SizeTag<T>& t) {
  ar(t.size);
}
// An element of a sized container takes at least one byte on the wire unless
// its type is empty (std::monostate, a tag struct). A count beyond the bytes
// left plus a small allowance for such elements is a forgery, refused before
// cereal resizes anything: a forged count can make the host allocate at most
// kEmptyElementAllowance elements more than the message could describe.
inline constexpr unsigned long long kEmptyElementAllowance = 4096;
template <class T>
inline void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, cereal::SizeTag<T>& t) {
  ar(t.size);
  if (static_cast<unsigned long long>(t.size) > ar.remaining() + kEmptyElementAllowance)
    throw DecodeError("size prefix " + std::to_string(static_cast<unsigned long long>(t.size)) + " exceeds the " +
                      std::to_string(ar.remaining()) + " bytes present");
}
// A vector of single bytes, the usual binary payload, is built straight from
// the input: cereal's own load resizes it first, which zero-fills every byte
// it then copies over (one more pass over a large payload). Same encoding.
template <class T, class A>
inline std::enable_if_t<std::is_arithmetic_v<T> && sizeof(T) == 1 && !std::is_same_v<T, bool>>
CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, std::vector<T, A>& v) {
  cereal::size_type n = 0;
  ar(cereal::make_size_tag(n));
  v.clear();
  v.reserve(static_cast<size_t>(n));  // the size tag's check bounds it by the message
  ar.read_pieces(static_cast<size_t>(n), [&v](const std::byte* piece, size_t k) {
    const auto* bytes = reinterpret_cast<const T*>(piece);
    v.insert(v.end(), bytes, bytes + k);
  });
}

template <class T>
inline void CEREAL_SAVE_FUNCTION_NAME(OutputArchive& ar, const cereal::BinaryData<T>& bd) {
  ar.saveBinary(bd.data, static_cast<std::streamsize>(bd.size));
}
template <class T>
inline void CEREAL_LOAD_FUNCTION_NAME(InputArchive& ar, cereal::BinaryData<T>& bd) {
  ar.loadBinary(bd.data, static_cast<std::streamsize>(bd.size));
}

}  // namespace procpool::detail

CEREAL_REGISTER_ARCHIVE(procpool::detail::OutputArchive)
CEREAL_REGISTER_ARCHIVE(procpool::detail::InputArchive)
CEREAL_SETUP_ARCHIVE_TRAITS(procpool::detail::InputArchive, procpool::detail::OutputArchive)
