// SPDX-License-Identifier: MIT
#pragma once
// The errors procpool::mpi raises, beside procpool's own (which cross from
// an agent as their own types: error_codecs.cpp).
#include <sys/types.h>

#include <string>
#include <vector>

#include <procpool/common/errors.hpp>

namespace procpool::mpi {

// A worker of an agent died running the call: WorkerCrashed, whose what()
// ends with the MPI rank and host name of the agent that ran it.
class RemoteWorkerCrashed : public WorkerCrashed {
 public:
  RemoteWorkerCrashed(const WorkerCrashed& crash, int rank, std::string host);
  RemoteWorkerCrashed(const std::string& function, pid_t pid, int signal, int exit_code, std::string backtrace,
                      const std::vector<std::string>& last_output, int rank, std::string host);
  int rank() const noexcept { return rank_; }
  const std::string& host() const noexcept { return host_; }

 private:
  int rank_;
  std::string host_;
};

// An agent cannot be reached or broke the protocol: its MPI error, or the
// malformed frame it sent. Calls it held fail with this; it gets no more.
class AgentLost : public Error {
 public:
  AgentLost(int rank, std::string host, const std::string& why);
  int rank() const noexcept { return rank_; }
  const std::string& host() const noexcept { return host_; }

 private:
  int rank_;
  std::string host_;
};

// A rank's function registry is not the host's (another build of the
// program, or functions registered at run time on some ranks only): function
// ids would name different functions. init() refuses the start with this on
// rank 0 after every agent has been told to exit; what() names the rank, its
// host and the first function that differs.
class RegistryMismatch : public Error {
 public:
  RegistryMismatch(int rank, std::string host, const std::string& difference);
  int rank() const noexcept { return rank_; }
  const std::string& host() const noexcept { return host_; }

 private:
  int rank_;
  std::string host_;
};

// MPI itself failed (MPI_ERRORS_RETURN): which call and MPI's own message.
class MpiError : public Error {
 public:
  MpiError(const std::string& call, int code);
  int code() const noexcept { return code_; }

 private:
  int code_;
};

}  // namespace procpool::mpi
