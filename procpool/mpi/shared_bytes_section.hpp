// SPDX-License-Identifier: MIT
#pragma once
// SharedBytes as they cross MPI: as bytes. A memfd means nothing on another
// node, so a frame's SharedBytes (the handles its payload's SharedBytes
// name by index, common/shared_bytes.hpp) travel after the frame's own
// bytes, as a section:
//
//   bytes of handle 0 | ... | bytes of handle n-1 | u64 size[0..n-1]
//
// n is the count in the frame's header (handle_count(header.handles)); the
// payload before the section is left as the local pool wrote it, indices
// and all. The receiver copies each handle's bytes into a fresh sealed
// memfd (SharedBytes::copy_of) in its own node, in the same order, so the
// indices hold. Host -> agent: the section precedes the CallTrailer;
// agent -> host: it ends the reply (protocol.hpp).
//
// The receiver trusts nothing: the count at most kMaxHandlesPerFrame, each
// size 1 to `max_each` bytes, and the sizes within the bytes present.
#include <cstddef>
#include <cstdint>
#include <span>

#include <procpool/common/archive.hpp>
#include <procpool/common/frame.hpp>

namespace procpool::mpi::detail {

// What a section adds beyond its handles' own bytes, at most: their sizes.
inline constexpr size_t kMaxSharedBytesSizes = procpool::detail::kMaxHandlesPerFrame * sizeof(uint64_t);

// The section's length for `handles`: their bytes and one size each.
size_t shared_bytes_section_size(const procpool::detail::HandleList& handles) noexcept;

// Appends the section of `handles` to `frame`.
void append_shared_bytes(procpool::detail::ByteBuffer& frame, const procpool::detail::HandleList& handles);

// Takes the section of `count` handles off the end of `bytes` (which then
// ends where it began) and makes each handle's memory in this process.
// Throws MalformedFrame (frame_channel.hpp) for a count, a size or a section
// the bytes cannot hold; procpool::Error when no memory can be had.
procpool::detail::HandleList take_shared_bytes(std::span<const std::byte>& bytes, size_t count, size_t max_each);

}  // namespace procpool::mpi::detail
