// SPDX-License-Identifier: MIT
#pragma once
// The seccomp-bpf filter of a Sandbox, built with libseccomp. The host
// checks a sandbox when a pool is made (every name resolved, every rule
// accepted, a dry build); each worker builds and loads its own filter
// after its initializer, because the filter names the worker's pid (the
// only process its kill and tgkill may signal).
#include <linux/filter.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include <procpool/sandbox/sandbox.hpp>

namespace procpool::detail {

// Throws procpool::Error naming what this machine cannot enforce: an
// unknown syscall name, a rule libseccomp refuses, no Landlock for
// read_only_files, a readable path that is not an absolute, existing one.
void check_sandbox(const Sandbox& sandbox);

// Builds the filter for process `self` and loads it on every thread of the
// calling process (TSYNC). Returns nullptr, or the step that failed with
// errno set. Allocates (libseccomp): call it after the worker's first
// allocation has proven the allocator usable.
const char* load_seccomp_filter(const Sandbox& sandbox, pid_t self) noexcept;

// The BPF program load_seccomp_filter would load for process `self`, as
// libseccomp generates it (seccomp_export_bpf): for tests that check what
// it answers to each architecture and argument. Throws procpool::Error.
std::vector<sock_filter> export_seccomp_filter(const Sandbox& sandbox, pid_t self);

// "ptrace" for a syscall number of an AUDIT_ARCH_* architecture, as the
// SIGSYS handler recorded them; "syscall <n> of architecture 0x<arch>"
// when libseccomp does not know it.
std::string syscall_name(uint32_t arch, int number);

}  // namespace procpool::detail
