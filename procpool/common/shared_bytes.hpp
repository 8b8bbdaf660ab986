// SPDX-License-Identifier: MIT
#pragma once
// SharedBytes: immutable bytes in shared memory that travel to a worker and
// back without being copied.
//
// A SharedBytes is a sealed memfd mapped read-only. A call or result that
// holds one carries its descriptor beside the frame (handle_channel.hpp),
// and the other process maps the same pages: a 64 MiB argument costs a few
// system calls, not 64 MiB of copying. Like Python's bytes it is immutable
// once made, so sharing it is safe: the seals (F_SEAL_WRITE, F_SEAL_SHRINK,
// F_SEAL_GROW) forbid every process, the maker included, to change or
// truncate it, which is also why the host can read a worker's SharedBytes
// without fearing that the worker rewrites it later or truncates it under
// the host's feet (a truncated mapping would fault with SIGBUS).
//
// Copies are cheap (a shared reference). Each distinct buffer alive holds
// one file descriptor in each process that holds it. Its memory is freed
// when the last holder in any process drops it. It has no name, so nothing
// is left in /dev/shm whatever happens.
#include <cstddef>
#include <memory>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include <procpool/common/archive.hpp>

namespace procpool {

namespace detail {

// One sealed, read-only mapping of a memfd, and the descriptor.
class SealedMemory {
 public:
  // Takes ownership of `fd`, a memfd from another process, and maps it;
  // throws DecodeError (closing fd) unless it is a memfd on tmpfs sealed
  // against writes and resizing, of 1 to max_size bytes.
  static std::shared_ptr<const SealedMemory> adopt(int fd, size_t max_size);
  SealedMemory(int fd, const std::byte* data, size_t size) noexcept : fd_(fd), data_(data), size_(size) {}
  ~SealedMemory();
  SealedMemory(const SealedMemory&) = delete;
  SealedMemory& operator=(const SealedMemory&) = delete;

  int fd() const noexcept { return fd_; }
  const std::byte* data() const noexcept { return data_; }
  size_t size() const noexcept { return size_; }

 private:
  int fd_;
  const std::byte* data_;
  size_t size_;
};

// A memfd of a fixed size being filled, by write() or through a writable
// mapping (bytes()), until seal(). Errors throw procpool::Error naming the
// syscall.
class WritableMemory {
 public:
  explicit WritableMemory(size_t size);
  ~WritableMemory();
  WritableMemory(const WritableMemory&) = delete;
  WritableMemory& operator=(const WritableMemory&) = delete;
  // Maps the memfd writable (once) and returns its bytes.
  std::span<std::byte> bytes();
  // Copies `from` to the start with pwrite(2): the kernel copies into each
  // new page as it allocates it, with no page fault and nothing to unmap,
  // 2-3x faster than a fresh mapping here (1 MiB: 126 against 338 µs).
  void write(std::span<const std::byte> from);
  // Unmaps, seals and maps read-only.
  std::shared_ptr<const SealedMemory> seal() &&;

 private:
  int fd_ = -1;
  std::byte* data_ = nullptr;
  size_t size_ = 0;
  bool copied_ = false;  // the copy seal() makes when a forked process holds the mapping
};

// Called in bytes() between the writable mmap and its MADV_DONTFORK (tests
// fork there, as a pool's forker thread may).
extern void (*writable_map_race_for_tests)();

}  // namespace detail

class SharedBytes {
 public:
  // Empty (no memory, no descriptor).
  SharedBytes() noexcept = default;

  // `size` bytes in fresh shared memory, written by fill(std::span<std::byte>)
  // and then sealed. Throws procpool::Error if the memory cannot be had.
  // For bytes that already exist elsewhere, copy_of is faster: it has the
  // kernel copy them in, instead of faulting in a writable mapping.
  template <class Fill>
  static SharedBytes make(size_t size, Fill&& fill) {
    if (size == 0) return {};
    detail::WritableMemory memory(size);
    std::forward<Fill>(fill)(memory.bytes());
    return SharedBytes(std::move(memory).seal());
  }
  static SharedBytes copy_of(std::span<const std::byte> bytes);
  static SharedBytes copy_of(std::string_view text) { return copy_of(std::as_bytes(std::span(text))); }

  const std::byte* data() const noexcept { return memory_ ? memory_->data() : nullptr; }
  size_t size() const noexcept { return memory_ ? memory_->size() : 0; }
  bool empty() const noexcept { return size() == 0; }
  std::span<const std::byte> bytes() const noexcept { return {data(), size()}; }
  std::string_view view() const noexcept { return {reinterpret_cast<const char*>(data()), size()}; }

  // Used by the archives (the descriptor travels beside the frame).
  explicit SharedBytes(std::shared_ptr<const detail::SealedMemory> memory) noexcept : memory_(std::move(memory)) {}
  const std::shared_ptr<const detail::SealedMemory>& memory() const noexcept { return memory_; }

 private:
  std::shared_ptr<const detail::SealedMemory> memory_;
};

// On the wire: the size, then (if not empty) the index of its descriptor
// among the frame's handles. Only procpool's own archives carry them.
void CEREAL_SAVE_FUNCTION_NAME(detail::OutputArchive& ar, const SharedBytes& bytes);
void CEREAL_LOAD_FUNCTION_NAME(detail::InputArchive& ar, SharedBytes& bytes);

}  // namespace procpool
