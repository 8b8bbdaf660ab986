// SPDX-License-Identifier: MIT
#pragma once
// Extra heap the host holds while the start-method figures are measured,
// as bench/python/start_methods.py's hold_heap: every page written, so
// that all of it is resident and a fork has its page tables to copy.
#include <sys/mman.h>

#include <cstddef>
#include <new>

namespace bench {

class HostHeap {
 public:
  explicit HostHeap(size_t bytes) : bytes_(bytes) {
    // mmap, not malloc: a malloc'd block that is written and freed unread
    // may be optimised away whole.
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    base_ = static_cast<volatile char*>(p);
    for (size_t i = 0; i < bytes; i += kPage) base_[i] = 1;
  }
  ~HostHeap() { ::munmap(const_cast<char*>(base_), bytes_); }
  HostHeap(const HostHeap&) = delete;
  HostHeap& operator=(const HostHeap&) = delete;

 private:
  static constexpr size_t kPage = 4096;
  size_t bytes_;
  volatile char* base_ = nullptr;
};

}  // namespace bench
