// SPDX-License-Identifier: MIT
#include <procpool/mpi/handshake.hpp>

#include <climits>

#include <cereal/types/string.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/vector.hpp>

#include <procpool/common/archive.hpp>
#include <procpool/common/function_registry.hpp>
#include <procpool/mpi/frame_channel.hpp>

namespace procpool::mpi::detail {
namespace {

using procpool::detail::InputArchive;
using procpool::detail::OutputArchive;

template <class T>
void send_blocking(MPI_Comm comm, int peer, const T& value) {
  ByteBuffer bytes;
  OutputArchive out(bytes);
  out(value);
  check_mpi(MPI_Send(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, peer, kHelloTag, comm), "MPI_Send");
}

template <class T>
T receive_blocking(MPI_Comm comm, int peer) {
  MPI_Status status;
  check_mpi(MPI_Probe(peer, kHelloTag, comm, &status), "MPI_Probe");
  int count = 0;
  check_mpi(MPI_Get_count(&status, MPI_BYTE, &count), "MPI_Get_count");
  ByteBuffer bytes;
  bytes.resize(static_cast<size_t>(count));
  check_mpi(MPI_Recv(bytes.data(), count, MPI_BYTE, peer, kHelloTag, comm, MPI_STATUS_IGNORE), "MPI_Recv");
  InputArchive in(bytes.data(), bytes.size());
  T value;
  in(value);
  return value;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> registry_listing() {
  const auto& registry = procpool::detail::FunctionRegistry::instance();
  std::vector<std::pair<std::string, std::string>> listing;
  listing.reserve(registry.size());
  for (uint32_t id = 0; id < registry.size(); ++id)
    listing.emplace_back(registry.at(id)->name, registry.at(id)->signature);
  return listing;
}

std::string registry_difference(const std::vector<std::pair<std::string, std::string>>& ours,
                                const std::vector<std::pair<std::string, std::string>>& theirs) {
  size_t common = std::min(ours.size(), theirs.size());
  for (size_t id = 0; id < common; ++id) {
    if (ours[id] == theirs[id]) continue;
    return "function #" + std::to_string(id) + " is '" + theirs[id].first + "' " + theirs[id].second + " there, '" +
           ours[id].first + "' " + ours[id].second + " on rank 0";
  }
  std::string counts =
      "it registers " + std::to_string(theirs.size()) + " function(s), rank 0 " + std::to_string(ours.size());
  if (theirs.size() > common)
    return counts + "; the first it has more: '" + theirs[common].first + "' " + theirs[common].second;
  if (ours.size() > common) return counts + "; the first it lacks: '" + ours[common].first + "' " + ours[common].second;
  return {};
}

Welcome greet_host(MPI_Comm comm, const AgentHello& hello) {
  send_blocking(comm, 0, hello);
  return receive_blocking<Welcome>(comm, 0);
}

std::vector<AgentHello> receive_hellos(MPI_Comm comm, int size) {
  std::vector<AgentHello> hellos;
  for (int rank = 1; rank < size; ++rank) hellos.push_back(receive_blocking<AgentHello>(comm, rank));
  return hellos;
}

void send_welcome(MPI_Comm comm, int rank, const Welcome& welcome) { send_blocking(comm, rank, welcome); }

}  // namespace procpool::mpi::detail
