// SPDX-License-Identifier: MIT
#pragma once
// The start-up handshake, blocking, on procpool's communicator with
// kHelloTag. Each agent sends rank 0 an AgentHello (cereal): its worker
// count, host name, pid and its function registry (name and signature of
// every function, in id order), or why its pool could not start. Rank 0 compares each registry with its own,
// then answers every agent with a Welcome: accepted, or refused with the
// reason (one differing rank refuses the start for all, so that no agent
// waits for calls that will never come).
#include <mpi.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace procpool::mpi::detail {

struct AgentHello {
  uint32_t workers = 0;
  std::string host;
  int32_t pid = 0;
  std::vector<std::pair<std::string, std::string>> functions;  // name, signature, in id order
  std::string error;                                           // why its pool could not start (workers is then 0)

  template <class Archive>
  void serialize(Archive& ar) {
    ar(workers, host, pid, functions, error);
  }
};

struct Welcome {
  bool accepted = false;
  std::string reason;

  template <class Archive>
  void serialize(Archive& ar) {
    ar(accepted, reason);
  }
};

// This process's registry, as an AgentHello lists it.
std::vector<std::pair<std::string, std::string>> registry_listing();

// Empty when `theirs` is the same registry as `ours`; else the first
// difference, in words.
std::string registry_difference(const std::vector<std::pair<std::string, std::string>>& ours,
                                const std::vector<std::pair<std::string, std::string>>& theirs);

// Agent: sends its hello to rank 0 and returns rank 0's answer.
Welcome greet_host(MPI_Comm comm, const AgentHello& hello);

// Host: one hello from each agent rank (1..size-1), in rank order.
std::vector<AgentHello> receive_hellos(MPI_Comm comm, int size);
void send_welcome(MPI_Comm comm, int rank, const Welcome& welcome);

}  // namespace procpool::mpi::detail
