// SPDX-License-Identifier: MIT
#include <procpool/sandbox/enter_sandbox.hpp>

#include <sys/prctl.h>
#include <unistd.h>

#include <cstdlib>

#include <procpool/sandbox/landlock.hpp>
#include <procpool/sandbox/path_queries.hpp>
#include <procpool/sandbox/seccomp_filter.hpp>
#include <procpool/worker/usage_meter.hpp>

namespace procpool::detail {

const char* enter_sandbox(const Sandbox& sandbox) noexcept {
  if (!sandbox.enabled()) return nullptr;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return "prctl(PR_SET_NO_NEW_PRIVS)";
  if (::chdir("/") != 0) return "chdir(\"/\")";
  // The host's environment may hold secrets (tokens, keys): none of it
  // stays, only what the sandbox gives. The worker has one thread here, so
  // the environment's calls race with nothing.
  if (::clearenv() != 0) return "clearenv";  // NOLINT(concurrency-mt-unsafe)
  for (const std::string& variable : sandbox.variables())
    // The host's copy, for the worker's life.
    if (::putenv(const_cast<char*>(variable.c_str())) != 0) return "putenv";  // NOLINT(concurrency-mt-unsafe)
  // measure_usage resets the peak RSS through /proc/self/clear_refs: no
  // open is allowed once the filter is in.
  UsageMeter::keep_clear_refs_open();
  if (const char* step = restrict_to_readable_paths(sandbox.readable_paths())) return step;
  if (const char* step = install_path_query_handler(sandbox)) return step;
  return load_seccomp_filter(sandbox, ::getpid());
}

}  // namespace procpool::detail
