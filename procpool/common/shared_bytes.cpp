// SPDX-License-Identifier: MIT
#include <procpool/common/shared_bytes.hpp>

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <procpool/common/errno_text.hpp>
#include <procpool/common/errors.hpp>

namespace procpool {
namespace detail {
namespace {

// What makes a memfd safe to map from a process that does not trust its
// maker: nobody can write it, shrink it (SIGBUS on a mapped page past the
// end) or grow it.
constexpr int kRequiredSeals = F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW;

[[noreturn]] void fail(const char* syscall, size_t size, int err = errno) {
  throw Error("SharedBytes of " + std::to_string(size) + " bytes: " + syscall + ": " + detail::errno_text(err));
}

// Neither mapping is inherited by fork: a worker forked later (a pool's
// start, a replacement) must not see the host's other buffers, nor keep a
// writable mapping that would make the maker's seal fail with EBUSY.
void keep_from_children(void* at, size_t size) noexcept { (void)::madvise(at, size, MADV_DONTFORK); }

const std::byte* map_read_only(int fd, size_t size) {
  void* at = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  if (at == MAP_FAILED) return nullptr;
  keep_from_children(at, size);
  return static_cast<const std::byte*>(at);
}

}  // namespace

std::shared_ptr<const SealedMemory> SealedMemory::adopt(int fd, size_t max_size) {
  struct Closer {
    int fd;
    ~Closer() {
      if (fd >= 0) ::close(fd);
    }
  } owned{fd};
  int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0)
    throw DecodeError("a shared buffer that is not a memfd (F_GET_SEALS: " + std::string(detail::errno_text(errno)) +
                      ")");
  if ((seals & kRequiredSeals) != kRequiredSeals)
    throw DecodeError("a shared buffer that is not sealed against writes and resizing");
  // Plain shared memory only: a hugetlbfs memfd can fault with SIGBUS when
  // its pool runs dry.
  struct statfs fs {};
  if (::fstatfs(fd, &fs) != 0 || fs.f_type != TMPFS_MAGIC) throw DecodeError("a shared buffer that is not on tmpfs");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size <= 0) throw DecodeError("an empty or unreadable shared buffer");
  size_t size = static_cast<size_t>(st.st_size);
  // Reading a tmpfs hole allocates a page: a sparse buffer of a terabyte
  // could make the reader run out of memory.
  if (size > max_size)
    throw DecodeError("a shared buffer of " + std::to_string(size) +
                      " bytes, over max_message_bytes = " + std::to_string(max_size));
  const std::byte* data = map_read_only(fd, size);
  // This process's limit (memory, vm.max_map_count), not the sender's fault.
  if (!data) fail("mmap", size);
  try {
    auto memory = std::make_shared<const SealedMemory>(fd, data, size);
    owned.fd = -1;
    return memory;
  } catch (...) {
    ::munmap(const_cast<std::byte*>(data), size);
    throw;
  }
}

SealedMemory::~SealedMemory() {
  ::munmap(const_cast<std::byte*>(data_), size_);
  ::close(fd_);
}

WritableMemory::WritableMemory(size_t size) : size_(size) {
  fd_ = ::memfd_create("procpool-bytes", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd_ < 0) fail("memfd_create", size);
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
    int err = errno;
    ::close(fd_);
    fail("ftruncate", size, err);
  }
}

void (*writable_map_race_for_tests)() = nullptr;

std::span<std::byte> WritableMemory::bytes() {
  if (!data_) {
    void* at = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (at == MAP_FAILED) fail("mmap", size_);
    if (writable_map_race_for_tests) writable_map_race_for_tests();
    keep_from_children(at, size_);
    data_ = static_cast<std::byte*>(at);
  }
  return {data_, size_};
}

void WritableMemory::write(std::span<const std::byte> from) {
  if (from.size() > size_)
    throw Error("SharedBytes of " + std::to_string(size_) + " bytes: " + std::to_string(from.size()) +
                " bytes do not fit");
  for (size_t done = 0; done < from.size();) {
    ssize_t n = ::pwrite(fd_, from.data() + done, from.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("pwrite", size_, n < 0 ? errno : ENOSPC);  // tmpfs full, or out of memory
    done += static_cast<size_t>(n);
  }
}

WritableMemory::~WritableMemory() {
  if (data_) ::munmap(data_, size_);
  if (fd_ >= 0) ::close(fd_);
}

std::shared_ptr<const SealedMemory> WritableMemory::seal() && {
  // F_SEAL_WRITE is refused while a writable shared mapping exists.
  if (data_) ::munmap(data_, size_);
  data_ = nullptr;
  if (::fcntl(fd_, F_ADD_SEALS, kRequiredSeals | F_SEAL_SEAL) != 0) {
    if (errno != EBUSY || copied_) fail("fcntl(F_ADD_SEALS)", size_);
    // Another process holds a writable mapping of it, for as long as it
    // lives: one forked (a pool's worker, say) between bytes()'s mmap and
    // its MADV_DONTFORK. Written with pwrite, a fresh memfd is never mapped
    // writable, so nothing can hold it so.
    const std::byte* old = map_read_only(fd_, size_);
    if (!old) fail("mmap", size_);
    WritableMemory fresh(size_);
    fresh.copied_ = true;
    try {
      fresh.write({old, size_});
    } catch (...) {
      ::munmap(const_cast<std::byte*>(old), size_);
      throw;
    }
    ::munmap(const_cast<std::byte*>(old), size_);
    return std::move(fresh).seal();
  }
  const std::byte* data = map_read_only(fd_, size_);
  if (!data) fail("mmap", size_);
  try {
    auto memory = std::make_shared<const SealedMemory>(fd_, data, size_);
    fd_ = -1;
    return memory;
  } catch (...) {
    ::munmap(const_cast<std::byte*>(data), size_);
    throw;
  }
}

}  // namespace detail

SharedBytes SharedBytes::copy_of(std::span<const std::byte> bytes) {
  if (bytes.empty()) return {};
  detail::WritableMemory memory(bytes.size());
  memory.write(bytes);
  return SharedBytes(std::move(memory).seal());
}

void CEREAL_SAVE_FUNCTION_NAME(detail::OutputArchive& ar, const SharedBytes& bytes) {
  ar(static_cast<uint64_t>(bytes.size()));
  if (bytes.empty()) return;
  detail::HandleList* handles = ar.handles();
  if (!handles) throw detail::EncodeError("SharedBytes can travel only as a call's argument or result");
  if (handles->size() >= detail::kMaxHandlesPerFrame)
    throw ResourceLimitExceeded("shared_bytes_per_message", handles->size() + 1, detail::kMaxHandlesPerFrame,
                                "SharedBytes in one call or result");
  ar(static_cast<uint32_t>(handles->size()));
  handles->push_back(bytes.memory());
}

void CEREAL_LOAD_FUNCTION_NAME(detail::InputArchive& ar, SharedBytes& bytes) {
  uint64_t size = 0;
  ar(size);
  if (size == 0) {
    bytes = SharedBytes();
    return;
  }
  uint32_t index = 0;
  ar(index);
  const detail::HandleList* handles = ar.handles();
  size_t present = handles ? handles->size() : 0;
  if (index >= present)
    throw detail::DecodeError("SharedBytes #" + std::to_string(index) + " of a frame that came with " +
                              std::to_string(present));
  const auto& memory = (*handles)[index];
  if (memory->size() != size)
    throw detail::DecodeError("SharedBytes of " + std::to_string(size) + " bytes whose memory holds " +
                              std::to_string(memory->size()));
  bytes = SharedBytes(memory);
}

}  // namespace procpool
