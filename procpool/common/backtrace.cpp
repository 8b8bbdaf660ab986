// SPDX-License-Identifier: MIT
#include <procpool/common/backtrace.hpp>

#include <cxxabi.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <vector>

#include <procpool/common/type_name.hpp>
#include <procpool/common/worker_segment.hpp>

namespace procpool::detail {
namespace {

constexpr int kMaxThrowFrames = 48;
thread_local bool t_recording = false;
thread_local int t_frame_count = 0;
thread_local void* t_frames[kMaxThrowFrames];

// "binary(_ZN3fooEv+0x12) [0x...]" -> "binary(foo()+0x12) [0x...]"
std::string demangle_line(const char* line) {
  std::string s = line;
  auto open = s.find('(');
  auto plus = s.find('+', open == std::string::npos ? 0 : open);
  if (open == std::string::npos || plus == std::string::npos || plus == open + 1) return s;
  std::string mangled = s.substr(open + 1, plus - open - 1);
  return s.substr(0, open + 1) + demangle(mangled.c_str()) + s.substr(plus);
}

}  // namespace

std::string symbolize(void* const* frames, int count) {
  if (count <= 0) return {};
  std::unique_ptr<char*, void (*)(void*)> lines(backtrace_symbols(frames, count), std::free);
  std::string out;
  for (int i = 0; i < count; ++i) {
    std::string line = lines ? demangle_line(lines.get()[i]) : std::string("?");
    // Below the worker's loop are only the frames of the fork that made it.
    if (line.find("procpool::detail::run_worker(") != std::string::npos) break;
    out += "  #" + std::to_string(i) + " " + line + '\n';
  }
  return out;
}

int loaded_modules(LoadedModule* out, int max) noexcept {
  struct Walk {
    LoadedModule* out;
    int max;
    int count;
    uint64_t program_hash;
  } walk{out, max, 0, 0};
  // The program's own entry has an empty name: named by its path here.
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self);
  walk.program_hash = fingerprint(n > 0 ? std::string_view(self, static_cast<size_t>(n)) : std::string_view());
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto& w = *static_cast<Walk*>(data);
        if (w.count >= w.max) return 1;
        uint64_t lo = UINT64_MAX, hi = 0;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD) continue;
          lo = std::min<uint64_t>(lo, info->dlpi_addr + ph.p_vaddr);
          hi = std::max<uint64_t>(hi, info->dlpi_addr + ph.p_vaddr + ph.p_memsz);
        }
        if (lo >= hi) return 0;
        bool program = !info->dlpi_name || !*info->dlpi_name;
        w.out[w.count++] = {program ? w.program_hash : fingerprint(info->dlpi_name), lo, hi};
        return 0;
      },
      &walk);
  return walk.count;
}

std::string symbolize_crash(const ControlBlock& control) {
  int count =
      static_cast<int>(std::min<uint32_t>(control.crash_frame_count.load(std::memory_order_acquire), kMaxCrashFrames));
  int theirs = static_cast<int>(
      std::min<uint32_t>(control.crash_module_count.load(std::memory_order_relaxed), kMaxLoadedModules));
  LoadedModule ours[kMaxLoadedModules];
  int own = loaded_modules(ours, kMaxLoadedModules);
  std::vector<void*> frames(control.crash_frames, control.crash_frames + count);
  for (void*& frame : frames) {
    auto address = reinterpret_cast<uint64_t>(frame);
    const LoadedModule* from =
        std::find_if(control.crash_modules, control.crash_modules + theirs,
                     [&](const LoadedModule& m) { return m.start <= address && address < m.end; });
    if (from == control.crash_modules + theirs) continue;  // none noted (a worker of an older layout): as is
    const LoadedModule* to =
        std::find_if(ours, ours + own, [&](const LoadedModule& m) { return m.path_hash == from->path_hash; });
    // An address in our copy of the module: a pointer made from an integer
    // is what this is. NOLINTNEXTLINE(performance-no-int-to-ptr)
    frame = to == ours + own ? nullptr : reinterpret_cast<void*>(address - from->start + to->start);
  }
  return symbolize(frames.data(), count);
}

void record_throw_backtraces(bool on) noexcept {
  t_recording = on;
  t_frame_count = 0;
}

std::string last_throw_backtrace() { return symbolize(t_frames, t_frame_count); }

}  // namespace procpool::detail

// Interposes the C++ runtime's throw to note where a task threw; forwards
// to the real one at once. Outside a worker's task it only tests a flag.
namespace __cxxabiv1 {
extern "C" void __cxa_throw(void* object, std::type_info* type, void(_GLIBCXX_CDTOR_CALLABI* destructor)(void*)) {
  using Real = void (*)(void*, std::type_info*, void(_GLIBCXX_CDTOR_CALLABI*)(void*));
  static Real real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "__cxa_throw"));
  if (procpool::detail::t_recording) {
    // Skip this frame: the backtrace starts at the throw expression.
    void* frames[procpool::detail::kMaxThrowFrames + 1];
    int n = backtrace(frames, procpool::detail::kMaxThrowFrames + 1);
    procpool::detail::t_frame_count = n > 0 ? n - 1 : 0;
    for (int i = 1; i < n; ++i) procpool::detail::t_frames[i - 1] = frames[i];
  }
  real(object, type, destructor);
  __builtin_unreachable();
}
}  // namespace __cxxabiv1
