// SPDX-License-Identifier: MIT
#include <procpool/mpi/shared_bytes_section.hpp>

#include <cstring>
#include <string>
#include <vector>

#include <procpool/common/shared_bytes.hpp>
#include <procpool/mpi/frame_channel.hpp>

namespace procpool::mpi::detail {

using procpool::detail::HandleList;

size_t shared_bytes_section_size(const HandleList& handles) noexcept {
  size_t n = handles.size() * sizeof(uint64_t);
  for (const auto& memory : handles) n += memory->size();
  return n;
}

void append_shared_bytes(ByteBuffer& frame, const HandleList& handles) {
  if (handles.empty()) return;
  frame.reserve(frame.size() + shared_bytes_section_size(handles));
  for (const auto& memory : handles) frame.append(memory->data(), memory->size());
  for (const auto& memory : handles) {
    uint64_t size = memory->size();
    frame.append(&size, sizeof size);
  }
}

HandleList take_shared_bytes(std::span<const std::byte>& bytes, size_t count, size_t max_each) {
  if (count == 0) return {};
  if (count > procpool::detail::kMaxHandlesPerFrame)
    throw MalformedFrame("a frame with " + std::to_string(count) + " SharedBytes, over the " +
                         std::to_string(procpool::detail::kMaxHandlesPerFrame) + " one may hold");
  if (bytes.size() < count * sizeof(uint64_t))
    throw MalformedFrame("a frame too short for the sizes of its " + std::to_string(count) + " SharedBytes");
  std::vector<uint64_t> sizes(count);
  std::memcpy(sizes.data(), bytes.data() + bytes.size() - count * sizeof(uint64_t), count * sizeof(uint64_t));
  size_t left = bytes.size() - count * sizeof(uint64_t);
  size_t total = 0;
  for (uint64_t size : sizes) {
    // Each within its bound, so that the sum cannot wrap.
    if (size == 0 || size > max_each || size > left - total)
      throw MalformedFrame("a SharedBytes of " + std::to_string(size) + " bytes in a frame with " +
                           std::to_string(left - total) + " left for it (at most " + std::to_string(max_each) + ")");
    total += size;
  }
  const std::byte* at = bytes.data() + left - total;
  HandleList handles;
  handles.reserve(count);
  for (uint64_t size : sizes) {
    handles.push_back(SharedBytes::copy_of(std::span<const std::byte>(at, size)).memory());
    at += size;
  }
  bytes = bytes.first(left - total);
  return handles;
}

}  // namespace procpool::mpi::detail
