// SPDX-License-Identifier: MIT
#pragma once
// Starting a program under MPI: rank 0 is the host, where main goes on and
// makes MpiPools; every other rank is an agent that runs calls on a local
// ProcessPool and never returns to main.
#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include <procpool/loop/pool_options.hpp>

namespace procpool::mpi {

struct MpiOptions {
  // Each agent's local pool. workers = 0: the cores of the agent's node
  // shared among the agents on it (at least 1). start_method unset:
  // forkserver, whose zygote init() forks before MPI starts, so that no
  // worker holds MPI's state.
  PoolOptions agent_pool{};
  // Calls the host hands an agent ahead of its answers; least-loaded
  // dispatch keeps the rest on the host. 0: eight per worker of the agent
  // (at least 8), which keeps its workers fed across a network round trip
  // while the host still balances long calls.
  size_t in_flight_per_agent = 0;
  // How long the host waits for a word from an agent that holds calls
  // before it declares the agent lost (its calls fail with AgentLost). An
  // agent that holds calls sends a heartbeat every agent_timeout / 8, so
  // only a dead, stopped or unreachable one goes quiet that long: MPI
  // itself may never say (a dead peer on shared memory raises no error).
  // 0: no timeout.
  std::chrono::milliseconds agent_timeout{10000};
};

// Call first thing in main, in place of procpool::init (it calls it first,
// forking the forkserver's zygote before MPI starts), on every rank:
//
//   int main(int argc, char** argv) {
//     procpool::mpi::init(argc, argv);   // only rank 0 returns
//     procpool::mpi::MpiPool pool;
//
// MPI_Init_thread (MPI_THREAD_SERIALIZED), then the handshake: every agent
// sends rank 0 its function registry (names and signatures, in id order)
// and its worker count. On rank 0, returns once every agent is ready; an
// agent whose registry differs, or whose pool cannot start, makes every
// agent exit and init throw RegistryMismatch (or procpool::Error) here. On
// any other rank, serves calls until the host finalizes, then calls
// MPI_Finalize and exits 0 without returning. Run without mpirun (one
// rank), the program is a host without agents. MPI's error handler is
// MPI_ERRORS_RETURN: MPI errors become MpiError or AgentLost.
// Throws procpool::Error when MPI was already initialized by someone else,
// or gives less than MPI_THREAD_SERIALIZED.
void init(int argc, char** argv, const MpiOptions& options = {});

// On rank 0: waits for the calls still in flight, tells every agent to
// exit and calls MPI_Finalize. Runs by itself at exit (std::atexit) if not
// called; harmless twice. MpiPools must be gone (or shut down) first.
void finalize();

// The agents the host may use, as they introduced themselves (rank 0).
struct AgentInfo {
  int rank = 0;
  std::string host;
  pid_t pid = 0;
  size_t workers = 0;
};
std::vector<AgentInfo> agents();

// This process's MPI rank (0 on the host), -1 before init.
int rank() noexcept;

}  // namespace procpool::mpi
