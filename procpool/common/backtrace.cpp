// SPDX-License-Identifier: MIT
#include <procpool/common/backtrace.hpp>

#include <cxxabi.h>
#include <dlfcn.h>
#include <execinfo.h>

#include <cstdlib>
#include <memory>

#include <procpool/common/type_name.hpp>

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
