// SPDX-License-Identifier: MIT
#pragma once
// What procpool::init() noted, for the start methods that need it.
#include <sys/types.h>

#include <cstddef>
#include <string>

#include <procpool/worker/start_method.hpp>

namespace procpool::detail {

struct StartState {
  pid_t init_pid = 0;        // the process that called init(); 0: none did
  std::string argv0;         // a spawned worker's argv[0]
  size_t registry_size = 0;  // functions registered when init() was called
};
StartState start_state();

// Throws procpool::Error saying why a pool of this process cannot start
// workers by `method` (init() not called, functions registered after it,
// the zygote unavailable, the worker program not executable). `program`:
// PoolOptions::worker_program (empty: this program).
void check_start_method(StartMethod method, const std::string& program);

}  // namespace procpool::detail
