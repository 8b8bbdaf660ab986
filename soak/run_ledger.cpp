// SPDX-License-Identifier: MIT
#include "run_ledger.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

namespace soak {
namespace {

[[noreturn]] void fail(const std::string& what) { throw std::system_error(errno, std::generic_category(), what); }

// The worker's mapping, made on first use (a worker runs one call at a time).
LedgerSlot* g_worker_slots = nullptr;
size_t g_worker_calls = 0;

}  // namespace

std::string ledger_path(pid_t host) {
  const char* dir = getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/procpool-soak-" + std::to_string(host) + ".runs";
}

RunLedger::RunLedger(size_t calls) : path_(ledger_path(getpid())), calls_(calls) {
  int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) fail("open " + path_);
  size_t bytes = calls * sizeof(LedgerSlot);
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0 ||
      (slots_ = static_cast<LedgerSlot*>(::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0))) ==
          MAP_FAILED) {
    int saved = errno;
    ::close(fd);
    ::unlink(path_.c_str());
    errno = saved;
    fail("map " + path_);
  }
  ::close(fd);
  // Touch every page now, so that the host's RSS curve does not count the
  // ledger's pages as growth when the epochs' checks first read them.
  for (size_t i = 0; i < calls; i += 4096 / sizeof(LedgerSlot)) slots_[i].runs = 0;
}

RunLedger::~RunLedger() {
  ::munmap(slots_, calls_ * sizeof(LedgerSlot));
  ::unlink(path_.c_str());
}

uint32_t RunLedger::runs(uint32_t id) const noexcept {
  return std::atomic_ref<uint32_t>(slots_[id].runs).load(std::memory_order_acquire);
}

pid_t RunLedger::pid(uint32_t id) const noexcept {
  return std::atomic_ref<int32_t>(slots_[id].pid).load(std::memory_order_acquire);
}

void note_run(uint32_t id, bool publish_pid) {
  if (!g_worker_slots) {
    std::string path = ledger_path(getppid());
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error("soak: cannot open the run ledger " + path);
    struct stat st {};
    void* map = MAP_FAILED;
    if (::fstat(fd, &st) == 0)
      map = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (map == MAP_FAILED) throw std::runtime_error("soak: cannot map the run ledger " + path);
    g_worker_slots = static_cast<LedgerSlot*>(map);
    g_worker_calls = static_cast<size_t>(st.st_size) / sizeof(LedgerSlot);
  }
  if (id >= g_worker_calls) throw std::runtime_error("soak: call id " + std::to_string(id) + " outside the ledger");
  std::atomic_ref<uint32_t>(g_worker_slots[id].runs).fetch_add(1, std::memory_order_acq_rel);
  if (publish_pid) std::atomic_ref<int32_t>(g_worker_slots[id].pid).store(getpid(), std::memory_order_release);
}

}  // namespace soak
