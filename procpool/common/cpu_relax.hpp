// SPDX-License-Identifier: MIT
#pragma once
// A hint to the CPU inside a spin-wait loop: it saves power and lets the
// sibling hyper-thread run, and on x86 avoids the memory-order mis-speculation
// penalty when the awaited store arrives.

namespace procpool::detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield" ::: "memory");
#elif defined(__powerpc64__)
  asm volatile("or 27,27,27" ::: "memory");
#else
  asm volatile("" ::: "memory");
#endif
}

}  // namespace procpool::detail
