// SPDX-License-Identifier: MIT
#include <procpool/worker/start_method.hpp>

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>

#include <procpool/common/errors.hpp>
#include <procpool/common/function_registry.hpp>
#include <procpool/worker/forkserver.hpp>
#include <procpool/worker/spawn_start.hpp>
#include <procpool/worker/start_state.hpp>

namespace procpool {
namespace {

// -1: unset; otherwise a StartMethod.
std::atomic<int> g_default_method{-1};

detail::StartState g_state;
std::mutex g_state_mutex;

}  // namespace

const char* to_string(StartMethod method) noexcept {
  switch (method) {
    case StartMethod::fork:
      return "fork";
    case StartMethod::forkserver:
      return "forkserver";
    case StartMethod::spawn:
      return "spawn";
  }
  return "?";
}

void init(int argc, char** argv) {
  (void)argc;
  // getenv races only with a setenv on another thread, and init is called
  // first in main. NOLINTNEXTLINE(concurrency-mt-unsafe)
  if (const char* channel = std::getenv(detail::kSpawnChannelVariable)) detail::become_spawned_worker(channel);
  {
    std::lock_guard lock(g_state_mutex);
    if (g_state.init_pid == ::getpid()) return;
    g_state.init_pid = ::getpid();
    g_state.argv0 = argv && argv[0] ? argv[0] : "";
    g_state.registry_size = detail::FunctionRegistry::instance().size();
  }
  detail::start_zygote();
}

void set_default_start_method(StartMethod method) noexcept {
  g_default_method.store(static_cast<int>(method), std::memory_order_relaxed);
}

std::optional<StartMethod> default_start_method() noexcept {
  int m = g_default_method.load(std::memory_order_relaxed);
  if (m < 0) return std::nullopt;
  return static_cast<StartMethod>(m);
}

namespace detail {

StartState start_state() {
  std::lock_guard lock(g_state_mutex);
  return g_state;
}

void check_start_method(StartMethod method, const std::string& program) {
  // procpool never sets the host's environment; a user's setenv on another
  // thread while a pool starts is theirs to order. NOLINTNEXTLINE(concurrency-mt-unsafe)
  if (std::getenv(kSpawnChannelVariable))
    throw Error(
        "this process was started as a procpool worker (StartMethod::spawn) but did not become one: its main must call "
        "procpool::init(argc, argv) first thing");
  if (method == StartMethod::fork) return;
  std::string what = std::string("StartMethod::") + to_string(method);
  StartState state = start_state();
  if (state.init_pid != ::getpid()) {
    if (method == StartMethod::forkserver || program.empty())
      throw Error(what + " needs procpool::init(argc, argv) at the top of main" +
                  (state.init_pid != 0 ? std::string(" (it was called in a process this one is a fork of: call it here "
                                                     "too)")
                                       : std::string()) +
                  "; or use StartMethod::fork");
  }
  // Function ids are positions in the registry: a worker knows the
  // functions registered before init() (the zygote's copy, the spawned
  // program's own static registrations), not those registered later.
  const FunctionRegistry& registry = FunctionRegistry::instance();
  if (state.init_pid == ::getpid() && registry.size() != state.registry_size) {
    std::string names;
    for (size_t id = state.registry_size; id < registry.size() && id < state.registry_size + 5; ++id)
      names += std::string(names.empty() ? "" : ", ") + "'" + registry.at(static_cast<uint32_t>(id))->name + "'";
    throw Error(what + " cannot run functions registered after procpool::init() (" + names +
                "): its workers would not know them; register them with PROCPOOL_REGISTER, or before init()");
  }
  if (method == StartMethod::forkserver)
    if (const char* why = zygote_unavailable()) throw Error(what + ": " + why);
  if (method == StartMethod::spawn && !program.empty() && ::access(program.c_str(), X_OK) != 0)
    throw Error(what + ": the worker program '" + program + "' cannot be executed");
}

}  // namespace detail
}  // namespace procpool
