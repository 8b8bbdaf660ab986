// SPDX-License-Identifier: MIT
#include <procpool/mpi/error_codecs.hpp>

#include <chrono>
#include <vector>

#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <procpool/common/exception_codec.hpp>
#include <procpool/common/type_name.hpp>
#include <procpool/mpi/errors.hpp>

namespace procpool::mpi::detail {
namespace {

using procpool::detail::as_raised;
using procpool::detail::ExceptionCodec;
using procpool::detail::ExceptionRegistry;
using procpool::detail::InputArchive;
using procpool::detail::OutputArchive;

// The agent that encodes a crash: set once, before any pool exists.
int g_rank = -1;
std::string g_host;

// An error whose what() is all it carries: the record's message rebuilds it.
template <class E>
void add_message_only(ExceptionRegistry& registry) {
  registry.add(typeid(E), ExceptionCodec{
                              procpool::detail::type_name<E>(),
                              [](OutputArchive&, const std::exception&) {},
                              [](InputArchive&, const RemoteOrigin& origin, bool nest) {
                                return as_raised(E(origin.message()), nest);
                              },
                          });
}

void save_crash(OutputArchive& out, const std::exception& e) {
  auto& c = dynamic_cast<const WorkerCrashed&>(e);
  // A crash relayed once already (a host that is itself an agent's task)
  // keeps the rank it happened on.
  auto* remote = dynamic_cast<const RemoteWorkerCrashed*>(&e);
  int rank = remote ? remote->rank() : g_rank;
  const std::string& host = remote ? remote->host() : g_host;
  out(c.function(), static_cast<int32_t>(c.pid()), static_cast<int32_t>(c.signal()),
      static_cast<int32_t>(c.exit_code()), c.backtrace(), c.last_output(), static_cast<int32_t>(rank), host);
}

std::exception_ptr load_crash(InputArchive& in, const RemoteOrigin&, bool nest) {
  std::string function, backtrace, host;
  int32_t pid = 0, signal = 0, exit_code = 0, rank = 0;
  std::vector<std::string> last_output;
  in(function, pid, signal, exit_code, backtrace, last_output, rank, host);
  return as_raised(
      RemoteWorkerCrashed(function, pid, signal, exit_code, std::move(backtrace), last_output, rank, std::move(host)),
      nest);
}

}  // namespace

void register_error_codecs(int rank, const std::string& host) {
  g_rank = rank;
  g_host = host;
  auto& registry = ExceptionRegistry::instance();
  registry.add(typeid(WorkerCrashed),
               ExceptionCodec{procpool::detail::type_name<WorkerCrashed>(), &save_crash, &load_crash});
  registry.add(typeid(RemoteWorkerCrashed),
               ExceptionCodec{procpool::detail::type_name<RemoteWorkerCrashed>(), &save_crash, &load_crash});
  registry.add(typeid(TaskTimeout),
               ExceptionCodec{
                   procpool::detail::type_name<TaskTimeout>(),
                   [](OutputArchive& out, const std::exception& e) {
                     auto& t = dynamic_cast<const TaskTimeout&>(e);
                     out(t.function(), static_cast<int64_t>(t.deadline().count()), static_cast<int32_t>(t.pid()));
                   },
                   [](InputArchive& in, const RemoteOrigin& origin, bool nest) {
                     std::string function;
                     int64_t deadline_ms = 0;
                     int32_t pid = 0;
                     in(function, deadline_ms, pid);
                     // A wait's timeout has only its text (errors.hpp).
                     if (function.empty()) return as_raised(TaskTimeout(origin.message()), nest);
                     return as_raised(TaskTimeout(function, std::chrono::milliseconds(deadline_ms), pid), nest);
                   },
               });
  add_message_only<TaskCancelled>(registry);
  add_message_only<PoolShutdown>(registry);
  add_message_only<PoolBroken>(registry);
}

}  // namespace procpool::mpi::detail
