// SPDX-License-Identifier: MIT
#pragma once
// The path half of Sandbox::read_only_files. seccomp sees a syscall's
// arguments, not the strings they point to, so it cannot tell
// open("/data/x") from open("/etc/passwd"); Landlock (Linux 5.13+) checks
// the path the kernel resolved, symlinks and ".." included.
#include <string>
#include <vector>

namespace procpool::detail {

// Throws procpool::Error unless every path is absolute and exists, and the
// kernel has Landlock enabled (when there is any path).
void check_readable_paths(const std::vector<std::string>& paths);

// Confines the calling process (and its future children) to reading files
// and listing directories beneath `paths`: every other file-system access
// Landlock ABI 1 knows (write, create, remove, execute...) is refused with
// EACCES. Returns nullptr, or the step that failed with errno set.
const char* restrict_to_readable_paths(const std::vector<std::string>& paths) noexcept;

}  // namespace procpool::detail
