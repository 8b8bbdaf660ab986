// SPDX-License-Identifier: MIT
#include <procpool/mpi/init.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <procpool/common/errors.hpp>
#include <procpool/loop/process_pool.hpp>
#include <procpool/mpi/agent.hpp>
#include <procpool/mpi/error_codecs.hpp>
#include <procpool/mpi/errors.hpp>
#include <procpool/mpi/frame_channel.hpp>
#include <procpool/mpi/handshake.hpp>
#include <procpool/mpi/host_link.hpp>
#include <procpool/mpi/session.hpp>
#include <procpool/worker/start_method.hpp>

namespace procpool::mpi {
namespace {

struct World {
  MPI_Comm comm = MPI_COMM_NULL;  // procpool's own duplicate of MPI_COMM_WORLD
  int rank = -1;
  int size = 0;
  std::string host;
  int agents_on_node = 0;  // ranks other than 0 sharing this node
};

World join_world() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized)
    throw Error("procpool::mpi::init: MPI is already initialized; let procpool::mpi::init call MPI_Init_thread");
  int provided = 0;
  // Before anything else MPI: the error handler is not set yet, and a
  // failure here aborts as MPI's default says.
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
  if (provided < MPI_THREAD_SERIALIZED) {
    MPI_Finalize();
    throw Error(
        "procpool::mpi::init: this MPI gives no MPI_THREAD_SERIALIZED (the host calls MPI from its link thread)");
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  World world;
  detail::check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &world.comm), "MPI_Comm_dup");
  detail::check_mpi(MPI_Comm_set_errhandler(world.comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  detail::check_mpi(MPI_Comm_rank(world.comm, &world.rank), "MPI_Comm_rank");
  detail::check_mpi(MPI_Comm_size(world.comm, &world.size), "MPI_Comm_size");
  char name[MPI_MAX_PROCESSOR_NAME];
  int length = 0;
  detail::check_mpi(MPI_Get_processor_name(name, &length), "MPI_Get_processor_name");
  world.host.assign(name, static_cast<size_t>(length));
  // The ranks on this node, and whether rank 0 is among them (it runs no
  // calls, so it takes no share of the cores).
  MPI_Comm node;
  detail::check_mpi(MPI_Comm_split_type(world.comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node),
                    "MPI_Comm_split_type");
  int node_size = 0, lowest = 0;
  detail::check_mpi(MPI_Comm_size(node, &node_size), "MPI_Comm_size");
  detail::check_mpi(MPI_Allreduce(&world.rank, &lowest, 1, MPI_INT, MPI_MIN, node), "MPI_Allreduce");
  MPI_Comm_free(&node);
  world.agents_on_node = node_size - (lowest == 0 ? 1 : 0);
  return world;
}

void leave_world(World& world) {
  if (world.comm != MPI_COMM_NULL) MPI_Comm_free(&world.comm);
  MPI_Finalize();
}

PoolOptions agent_pool_options(const MpiOptions& options, const World& world) {
  PoolOptions pool = options.agent_pool;
  if (pool.workers == 0) {
    size_t cores = std::max(1u, std::thread::hardware_concurrency());
    pool.workers = std::max<size_t>(1, cores / static_cast<size_t>(std::max(1, world.agents_on_node)));
  }
  if (!pool.start_method) pool.start_method = StartMethod::forkserver;
  return pool;
}

[[noreturn]] void run_agent(World world, const MpiOptions& options) {
  PoolOptions pool_options = agent_pool_options(options, world);
  detail::AgentHello hello;
  hello.workers = static_cast<uint32_t>(pool_options.workers);
  hello.host = world.host;
  hello.pid = static_cast<int32_t>(::getpid());
  hello.functions = detail::registry_listing();
  std::optional<ProcessPool> pool;
  try {
    pool.emplace(pool_options);
  } catch (const std::exception& e) {
    hello.workers = 0;
    hello.error = e.what();
  }
  try {
    detail::Welcome welcome = detail::greet_host(world.comm, hello);
    if (!welcome.accepted) {
      std::fprintf(stderr, "procpool::mpi: rank %d exits without serving: %s\n", world.rank, welcome.reason.c_str());
    } else {
      detail::serve_host(world.comm, *pool, pool_options.max_message_bytes, options.agent_timeout / 8);
    }
  } catch (const std::exception& e) {
    // MPI failed, or rank 0 broke the protocol: nothing sensible is left to
    // do for this job.
    std::fprintf(stderr, "procpool::mpi: the agent on rank %d stops: %s\n", world.rank, e.what());
    MPI_Abort(world.comm, 1);
  }
  pool.reset();  // its workers finish and are reaped before MPI ends
  leave_world(world);
  // The agent's process ends here, as init promises: its pool is gone and
  // MPI is finalized, so no thread of ours runs. NOLINTNEXTLINE(concurrency-mt-unsafe)
  std::exit(0);
}

// Rank 0's state between init and finalize.
struct HostSession {
  World world;
  std::unique_ptr<detail::HostLink> link;
};
std::mutex g_session_mutex;
HostSession* g_session = nullptr;  // never freed: read by atexit and by pools until exit
bool g_finalized = false;
int g_rank = -1;

void welcome_or_refuse(World& world, const std::vector<detail::AgentHello>& hellos) {
  auto ours = detail::registry_listing();
  std::optional<RegistryMismatch> mismatch;
  std::string start_failure;
  for (size_t i = 0; i < hellos.size(); ++i) {
    int rank = static_cast<int>(i) + 1;
    if (!hellos[i].error.empty() && start_failure.empty())
      start_failure = "the agent on MPI rank " + std::to_string(rank) + " (host " + hellos[i].host +
                      ") could not start its pool: " + hellos[i].error;
    std::string difference = detail::registry_difference(ours, hellos[i].functions);
    if (!difference.empty() && !mismatch) mismatch.emplace(rank, hellos[i].host, difference);
  }
  std::string refusal = mismatch ? mismatch->what() : start_failure;
  for (int rank = 1; rank < world.size; ++rank)
    detail::send_welcome(world.comm, rank, detail::Welcome{refusal.empty(), refusal});
  if (refusal.empty()) return;
  leave_world(world);
  if (mismatch) throw *mismatch;
  throw Error(start_failure);
}

}  // namespace

void init(int argc, char** argv, const MpiOptions& options) {
  // First: a spawned worker becomes one here and never reaches MPI, and the
  // zygote is forked before MPI exists in this process.
  procpool::init(argc, argv);
  World world = join_world();
  g_rank = world.rank;
  detail::register_error_codecs(world.rank, world.host);
  if (world.rank != 0) run_agent(std::move(world), options);

  std::vector<detail::AgentHello> hellos = detail::receive_hellos(world.comm, world.size);
  welcome_or_refuse(world, hellos);
  std::vector<AgentInfo> infos;
  for (size_t i = 0; i < hellos.size(); ++i)
    infos.push_back(
        AgentInfo{static_cast<int>(i) + 1, hellos[i].host, static_cast<pid_t>(hellos[i].pid), hellos[i].workers});
  std::lock_guard lock(g_session_mutex);
  g_session = new HostSession{world, nullptr};
  g_session->link = std::make_unique<detail::HostLink>(world.comm, std::move(infos), options.in_flight_per_agent,
                                                       options.agent_pool.max_message_bytes,
                                                       options.agent_pool.cancel_running, options.agent_timeout);
  std::atexit([] { finalize(); });
}

void finalize() {
  std::lock_guard lock(g_session_mutex);
  if (!g_session || g_finalized) return;
  g_finalized = true;
  // The link stays (stopped): an MpiPool that outlives finalize refuses
  // its calls with PoolShutdown instead of reaching a freed link.
  g_session->link->stop();
  leave_world(g_session->world);
}

std::vector<AgentInfo> agents() {
  std::lock_guard lock(g_session_mutex);
  if (!g_session || g_finalized) return {};
  return g_session->link->agents();
}

int rank() noexcept { return g_rank; }

namespace detail {
HostLink& host_link() {
  std::lock_guard lock(g_session_mutex);
  if (g_rank > 0) throw Error("an MpiPool is made on rank 0 only (the agents never return from procpool::mpi::init)");
  if (!g_session) throw Error("an MpiPool needs procpool::mpi::init(argc, argv) at the top of main");
  if (g_finalized) throw Error("procpool::mpi::finalize() has stopped the agents: no MpiPool can be made after it");
  return *g_session->link;
}
}  // namespace detail

}  // namespace procpool::mpi
