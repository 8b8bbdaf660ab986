// SPDX-License-Identifier: MIT
#pragma once
// The calling process's id, for checks on hot paths: whether a pool (its
// workers, rings and threads) belongs to this process or was copied into a
// child by fork(). glibc no longer caches getpid(), a system call; this
// caches it, and a pthread_atfork handler forgets it in every child that
// fork() makes. A child made by clone(2) without fork(3) keeps its parent's
// value (and then the parent's pool refuses nothing it should have).
#include <sys/types.h>

namespace procpool::detail {

pid_t this_process() noexcept;

}  // namespace procpool::detail
