// SPDX-License-Identifier: MIT
#include <procpool/mpi/errors.hpp>

#include <mpi.h>

namespace procpool::mpi {
namespace {

std::string where(int rank, const std::string& host) {
  return "MPI rank " + std::to_string(rank) + " (host " + host + ")";
}

std::string mpi_message(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(text, static_cast<size_t>(length));
}

}  // namespace

RemoteWorkerCrashed::RemoteWorkerCrashed(const WorkerCrashed& crash, int rank, std::string host)
    : WorkerCrashed(std::string(crash.what()) + " on " + where(rank, host), crash.function(), crash.pid(),
                    crash.signal(), crash.exit_code(), crash.backtrace(), crash.last_output()),
      rank_(rank), host_(std::move(host)) {}

RemoteWorkerCrashed::RemoteWorkerCrashed(const std::string& function, pid_t pid, int signal, int exit_code,
                                         std::string backtrace, const std::vector<std::string>& last_output, int rank,
                                         std::string host)
    : RemoteWorkerCrashed(WorkerCrashed(function, pid, signal, exit_code, std::move(backtrace), last_output), rank,
                          std::move(host)) {}

AgentLost::AgentLost(int rank, std::string host, const std::string& why)
    : Error("the agent on " + where(rank, host) + " was lost: " + why), rank_(rank), host_(std::move(host)) {}

RegistryMismatch::RegistryMismatch(int rank, std::string host, const std::string& difference)
    : Error("refused " + where(rank, host) + ": its function registry differs from rank 0's (" + difference +
            "); every rank must run the same program, registering the same functions in the same order"),
      rank_(rank), host_(std::move(host)) {}

MpiError::MpiError(const std::string& call, int code) : Error(call + " failed: " + mpi_message(code)), code_(code) {}

}  // namespace procpool::mpi
